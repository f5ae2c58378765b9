// Package brokers builds the go-micro v4 brokers the publisher and subscriber speak, each from
// explicit loopback addresses:
//
//   - mqtt: github.com/go-micro/plugins/v4/broker/mqtt on --broker_address
//     (tcp://127.0.0.1:<port>);
//   - http: go-micro's own HTTP broker, found through the Consul registry on
//     --registry_address, listening on 127.0.0.1;
//   - nsq: github.com/go-micro/plugins/v4/broker/nsq (go-nsq) on nsqd's TCP address
//     --broker_address (127.0.0.1:<port>), without nsqlookupd;
//   - kafka: github.com/go-micro/plugins/v4/broker/kafka (sarama 1.30.1) bootstrapping from
//     --broker_address (127.0.0.1:<port>).
//
// The kafka plugin is used as it comes except for one setting its consumer groups need on
// Kafka 4: sarama 1.30.1 commits offsets with OffsetCommit v1 unless
// Consumer.Offsets.Retention is set, and Kafka 4 removed OffsetCommit v0-v1 (KIP-896; it
// closes the connection, failing the fetch that shares it). KafkaConsumerConfig sets the
// retention to -1 ms, which makes sarama send OffsetCommit v2 with retention_time_ms = -1,
// "the broker's default", as v1 meant. Every other request the plugin sends with sarama's
// default Version (1.0.0) is one Kafka 4.4 still takes: Metadata v5, Produce v3, Fetch v4,
// ListOffsets v1, FindCoordinator v0, JoinGroup v1, SyncGroup v0, Heartbeat v0,
// OffsetFetch v1, LeaveGroup v0.
package brokers

import (
	"bytes"
	"log"
	"os"
	"sync"
	"time"

	"github.com/Shopify/sarama"
	"github.com/go-micro/plugins/v4/broker/kafka"
	"github.com/go-micro/plugins/v4/broker/mqtt"
	"github.com/go-micro/plugins/v4/broker/nsq"
	"go-micro.dev/v4/broker"

	"rmicro.test/interop/go/peer"
)

// New builds the broker named kind (mqtt, http, nsq or kafka) from the flags.
func New(kind string, f *peer.Flags) broker.Broker {
	switch kind {
	case "mqtt":
		peer.Loopback("broker", f.BrokerAddress)
		return mqtt.NewBroker(broker.Addrs(f.BrokerAddress))
	case "http":
		return broker.NewBroker(broker.Registry(f.Consul()), broker.Addrs("127.0.0.1:0"))
	case "nsq":
		peer.Loopback("broker", f.BrokerAddress)
		return nsq.NewBroker(broker.Addrs(f.BrokerAddress))
	case "kafka":
		peer.Loopback("broker", f.BrokerAddress)
		return kafka.NewBroker(broker.Addrs(f.BrokerAddress), kafka.ClusterConfig(KafkaConsumerConfig()))
	}
	peer.Fail("unknown broker %q (mqtt, http, nsq or kafka)", kind)
	return nil
}

// KafkaConsumerConfig is the sarama configuration the kafka plugin's consumer groups get:
// what the plugin uses when given none (sarama.NewConfig() with errors returned and new
// groups starting at the newest offset), with Consumer.Offsets.Retention = -1 ms so that
// offsets are committed with OffsetCommit v2 (see the package comment).
func KafkaConsumerConfig() *sarama.Config {
	c := sarama.NewConfig()
	if !c.Version.IsAtLeast(sarama.V0_10_2_0) {
		c.Version = sarama.V0_10_2_0
	}
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetNewest
	c.Consumer.Offsets.Retention = -time.Millisecond
	return c
}

// KafkaSubscribed sends sarama's log to standard error (prefixed `[sarama] `) and returns a
// channel closed once a partition of topic is being fetched. A new group starts at the
// partition's newest offset, and sarama logs `consumer/broker/<id> added subscription to
// <topic>/<partition>` only after it has looked that offset up: from then on every message
// published to the partition is delivered. (One partition: with more, this says that the
// first one is.)
func KafkaSubscribed(topic string) <-chan struct{} {
	w := &watch{want: []byte(" added subscription to " + topic + "/"), done: make(chan struct{})}
	sarama.Logger = log.New(w, "[sarama] ", log.Lmicroseconds)
	return w.done
}

// watch forwards log lines to standard error and closes done at the first one holding want.
type watch struct {
	want []byte
	done chan struct{}
	once sync.Once
}

func (w *watch) Write(p []byte) (int, error) {
	if bytes.Contains(p, w.want) {
		w.once.Do(func() { close(w.done) })
	}
	return os.Stderr.Write(p)
}
