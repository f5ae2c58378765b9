package main

// This file is OUR OWN MQTT broker.Broker for go-micro v5, written for this benchmark: the
// go-micro v5 MQTT plugin (github.com/micro/plugins/v5/broker/mqtt, also published as
// github.com/go-micro/plugins/v5/broker/mqtt) is not served by the Go module proxy, and
// go-micro v5's core has no MQTT broker. It is written from scratch over Eclipse paho and
// reproduces the observable behaviour of go-micro's own MQTT plugin (v4, v1.2.0), so the
// mqtt row measures what a go-micro service with that plugin would do:
//
//   - the payload is the JSON encoding of the whole broker.Message ({"Header":..,"Body":..},
//     the body as base64), through the broker's codec (go-micro's json.Marshaler);
//   - publish and subscribe use QoS 1, messages are not retained;
//   - Publish hands the message to paho and returns without waiting for the PUBACK (the
//     paho token is not awaited), while Connect and Subscribe wait for theirs (Unsubscribe
//     waits too here, the plugin's does not; the benchmark never unsubscribes);
//   - the client id is random and the session is persistent (clean session off);
//   - handlers run on paho's delivery goroutine, one message after another; a message that
//     does not decode is logged and dropped, Ack is a no-op.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go-micro.dev/v5/broker"
	"go-micro.dev/v5/codec/json"
	"go-micro.dev/v5/logger"
)

type mqttBroker struct {
	mu     sync.RWMutex
	opts   broker.Options
	addrs  []string
	client paho.Client
}

// newMQTTBroker returns an MQTT broker for the given options (broker.Addrs takes
// `tcp://host:port`, `ssl://host:port` or `host:port`; the default is tcp://127.0.0.1:1883).
func newMQTTBroker(opts ...broker.Option) broker.Broker {
	b := &mqttBroker{opts: broker.Options{Codec: json.Marshaler{}, Logger: logger.DefaultLogger}}
	b.apply(opts)
	return b
}

// apply sets options and rebuilds the paho client; the caller holds no lock or the write lock.
func (b *mqttBroker) apply(opts []broker.Option) {
	for _, o := range opts {
		o(&b.opts)
	}
	b.addrs = b.addrs[:0]
	for _, a := range b.opts.Addrs {
		if a = normalizeMQTTAddr(a); a != "" {
			b.addrs = append(b.addrs, a)
		}
	}
	if len(b.addrs) == 0 {
		b.addrs = []string{"tcp://127.0.0.1:1883"}
	}
	co := paho.NewClientOptions().
		SetClientID(fmt.Sprintf("gomicro-%016x", rand.Uint64())).
		SetCleanSession(false)
	if b.opts.TLSConfig != nil {
		co.SetTLSConfig(b.opts.TLSConfig)
	}
	for _, a := range b.addrs {
		co.AddBroker(a)
	}
	b.client = paho.NewClient(co)
}

// normalizeMQTTAddr adds the default scheme and port; unknown schemes give "".
func normalizeMQTTAddr(addr string) string {
	if addr == "" {
		return ""
	}
	if !strings.Contains(addr, "://") {
		addr = "tcp://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	switch u.Scheme {
	case "tcp":
		if port == "" {
			port = "1883"
		}
	case "ssl":
		if port == "" {
			port = "8883"
		}
	case "ws":
		if port == "" {
			port = "80"
		}
	default:
		return ""
	}
	return u.Scheme + "://" + u.Hostname() + ":" + port
}

func (b *mqttBroker) Init(opts ...broker.Option) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client.IsConnected() {
		return errors.New("mqtt: cannot init while connected")
	}
	b.apply(opts)
	return nil
}

func (b *mqttBroker) Options() broker.Options {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.opts
}

func (b *mqttBroker) Address() string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return strings.Join(b.addrs, ",")
}

func (b *mqttBroker) conn() paho.Client {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.client
}

func (b *mqttBroker) Connect() error {
	c := b.conn()
	if c.IsConnected() {
		return nil
	}
	t := c.Connect()
	t.Wait()
	return t.Error()
}

func (b *mqttBroker) Disconnect() error {
	if c := b.conn(); c.IsConnected() {
		c.Disconnect(0)
	}
	return nil
}

func (b *mqttBroker) Publish(topic string, m *broker.Message, _ ...broker.PublishOption) error {
	c := b.conn()
	if !c.IsConnected() {
		return errors.New("mqtt: not connected")
	}
	payload, err := b.opts.Codec.Marshal(m)
	if err != nil {
		return err
	}
	// As go-micro's plugin: the token is not waited for, only an error already known is
	// returned (the PUBACK arrives later, or never).
	return c.Publish(topic, 1, false, payload).Error()
}

func (b *mqttBroker) Subscribe(topic string, h broker.Handler, opts ...broker.SubscribeOption) (broker.Subscriber, error) {
	c := b.conn()
	if !c.IsConnected() {
		return nil, errors.New("mqtt: not connected")
	}
	so := broker.NewSubscribeOptions(opts...)
	codec, log := b.opts.Codec, b.opts.Logger
	t := c.Subscribe(topic, 1, func(_ paho.Client, pm paho.Message) {
		ev := &mqttEvent{topic: pm.Topic(), msg: new(broker.Message)}
		if err := codec.Unmarshal(pm.Payload(), ev.msg); err != nil {
			log.Logf(logger.ErrorLevel, "mqtt: cannot decode a message on %s: %v", pm.Topic(), err)
			return
		}
		if err := h(ev); err != nil {
			ev.err = err
			log.Logf(logger.ErrorLevel, "mqtt: handler for %s: %v", pm.Topic(), err)
		}
	})
	t.Wait()
	if err := t.Error(); err != nil {
		return nil, err
	}
	return &mqttSubscriber{topic: topic, opts: so, client: c}, nil
}

func (b *mqttBroker) String() string { return "mqtt" }

// mqttEvent is what a handler gets.
type mqttEvent struct {
	topic string
	msg   *broker.Message
	err   error
}

func (e *mqttEvent) Topic() string            { return e.topic }
func (e *mqttEvent) Message() *broker.Message { return e.msg }
func (e *mqttEvent) Ack() error               { return nil }
func (e *mqttEvent) Error() error             { return e.err }

// mqttSubscriber is one subscription; paho keys handlers by topic filter.
type mqttSubscriber struct {
	topic  string
	opts   broker.SubscribeOptions
	client paho.Client
}

func (s *mqttSubscriber) Options() broker.SubscribeOptions { return s.opts }
func (s *mqttSubscriber) Topic() string                    { return s.topic }
func (s *mqttSubscriber) Unsubscribe() error {
	t := s.client.Unsubscribe(s.topic)
	t.Wait()
	return t.Error()
}
