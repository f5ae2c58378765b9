// Command gomicro-bench is the go-micro (v5, go-micro.dev/v5 v5.30.0) side of rmicro-bench:
// the same GetStudent RPC and the same MQTT and NATS pub/sub rounds as the Rust side,
// measured inside this one process and printed as one `RESULT {json}` line on stdout.
//
//	gomicro-bench rpc  -ct application/json -c 16 -duration 1s -warmup 300ms
//	gomicro-bench mqtt -broker_address tcp://127.0.0.1:1883 -duration 1s -publishers 8 -lat 200
//	gomicro-bench nats -broker_address nats://127.0.0.1:4222 -duration 1s -publishers 8 -lat 200
//
// Everything listens and connects on 127.0.0.1 only; the registry is go-micro's memory
// registry (no mDNS), the RPC server's broker its memory broker. NATS is go-micro v5's own
// broker (go-micro.dev/v5/broker/nats); MQTT is our adapter in mqtt.go, because the v5 MQTT
// plugin is not served by the module proxy.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go-micro.dev/v5"
	"go-micro.dev/v5/broker"
	"go-micro.dev/v5/broker/nats"
	"go-micro.dev/v5/client"
	"go-micro.dev/v5/errors"
	"go-micro.dev/v5/logger"
	"go-micro.dev/v5/registry"
	"go-micro.dev/v5/server"
)

// Student is the seed's message.Student with its JSON names and protobuf fields (a legacy
// proto.Message, as in tests/interop: golang/protobuf reads the struct tags).
type Student struct {
	Name    string `json:"name" protobuf:"bytes,1,opt,name=name,proto3"`
	Classes string `json:"classes" protobuf:"bytes,2,opt,name=classes,proto3"`
	Grade   int32  `json:"grade" protobuf:"varint,3,opt,name=grade,proto3"`
	Phone   string `json:"phone" protobuf:"bytes,4,opt,name=phone,proto3"`
}

func (s *Student) Reset()         { *s = Student{} }
func (s *Student) String() string { return fmt.Sprintf("%+v", *s) }
func (*Student) ProtoMessage()    {}

// StudentRequest is the seed's message.StudentRequest.
type StudentRequest struct {
	Name string `json:"name" protobuf:"bytes,1,opt,name=name,proto3"`
}

func (r *StudentRequest) Reset()         { *r = StudentRequest{} }
func (r *StudentRequest) String() string { return fmt.Sprintf("%+v", *r) }
func (*StudentRequest) ProtoMessage()    {}

func davie() Student {
	return Student{Name: "davie", Classes: "软件工程专业", Grade: 80, Phone: "12345678901"}
}

// StudentService serves `StudentService.GetStudent`.
type StudentService struct{}

// GetStudent answers for davie and returns a 404 for anybody else.
func (s *StudentService) GetStudent(ctx context.Context, req *StudentRequest, rsp *Student) error {
	if req.Name != "davie" {
		return errors.NotFound("student_service", "no student named %s", req.Name)
	}
	*rsp = davie()
	return nil
}

// Result is what one round reports.
type Result struct {
	Count  int64   `json:"count"`
	Secs   float64 `json:"secs"`
	Errors int64   `json:"errors"`
	LatNs  []int64 `json:"lat_ns"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	os.Exit(2)
}

func emit(r Result) {
	b, err := json.Marshal(r)
	if err != nil {
		fail("json: %v", err)
	}
	fmt.Printf("RESULT %s\n", b)
}

func runRPC(args []string) {
	fs := flag.NewFlagSet("rpc", flag.ExitOnError)
	ct := fs.String("ct", "application/json", "content type")
	callers := fs.Int("c", 1, "concurrent callers")
	duration := fs.Duration("duration", time.Second, "measured time")
	warmup := fs.Duration("warmup", 300*time.Millisecond, "unmeasured warm-up")
	_ = fs.Parse(args)

	reg := registry.NewMemoryRegistry()
	registry.DefaultRegistry = reg
	srv := server.NewServer(
		server.Name("student_service"),
		server.Address("127.0.0.1:0"),
		server.Registry(reg),
		server.Broker(broker.NewMemoryBroker()),
	)
	if err := micro.RegisterHandler(srv, new(StudentService)); err != nil {
		fail("register handler: %v", err)
	}
	if err := srv.Start(); err != nil {
		fail("start: %v", err)
	}
	defer func() { _ = srv.Stop() }()

	c := client.NewClient(client.Registry(reg), client.ContentType(*ct))
	call := func() error {
		req := c.NewRequest("student_service", "StudentService.GetStudent", &StudentRequest{Name: "davie"})
		var rsp Student
		if err := c.Call(context.Background(), req, &rsp); err != nil {
			return err
		}
		if rsp.Grade != 80 {
			return fmt.Errorf("wrong student")
		}
		return nil
	}
	load(*callers, *warmup, call)
	emit(load(*callers, *duration, call))
}

// load runs `callers` closed loops of `call` for `d`, timing each call.
func load(callers int, d time.Duration, call func() error) Result {
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var res Result
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]int64, 0, 16*1024)
			var errs int64
			for {
				t := time.Now()
				if !t.Before(deadline) || errs > 100 {
					break
				}
				if err := call(); err != nil {
					if errs == 0 {
						fmt.Fprintf(os.Stderr, "call failed: %v\n", err)
					}
					errs++
					continue
				}
				lat = append(lat, int64(time.Since(t)))
			}
			mu.Lock()
			res.Count += int64(len(lat))
			res.Errors += errs
			res.LatNs = append(res.LatNs, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Secs = time.Since(start).Seconds()
	return res
}

// runPubSub runs the pub/sub round on the broker `kind` (mqtt or nats).
func runPubSub(kind string, args []string) {
	scheme := map[string]string{"mqtt": "tcp", "nats": "nats"}[kind]
	fs := flag.NewFlagSet(kind, flag.ExitOnError)
	addr := fs.String("broker_address", "", scheme+"://127.0.0.1:<port>")
	duration := fs.Duration("duration", time.Second, "throughput phase")
	warmup := fs.Duration("warmup", 300*time.Millisecond, "unmeasured warm-up")
	publishers := fs.Int("publishers", 8, "concurrent publishers")
	latMsgs := fs.Int("lat", 200, "messages timed one at a time")
	_ = fs.Parse(args)
	if !strings.HasPrefix(*addr, scheme+"://127.0.0.1:") {
		fail("broker address %q must be %s://127.0.0.1:<port>", *addr, scheme)
	}

	epoch := time.Now()
	var b broker.Broker
	if kind == "nats" {
		b = nats.NewNatsBroker(broker.Addrs(*addr))
	} else {
		b = newMQTTBroker(broker.Addrs(*addr))
	}
	if err := b.Connect(); err != nil {
		fail("connect: %v", err)
	}
	defer func() { _ = b.Disconnect() }()
	topic := "bench.gomicro"
	// Each report is the send time carried by the message and the time it reached the
	// handler, in nanoseconds since epoch.
	type report struct{ sent, at int64 }
	got := make(chan report, 1<<16)
	_, err := b.Subscribe(topic, func(e broker.Event) error {
		var s Student
		if err := json.Unmarshal(e.Message().Body, &s); err != nil {
			return err
		}
		sent, err := strconv.ParseInt(s.Phone, 10, 64)
		if err != nil {
			return err
		}
		got <- report{sent, int64(time.Since(epoch))}
		return nil
	})
	if err != nil {
		fail("subscribe: %v", err)
	}
	publish := func() error {
		s := davie()
		s.Phone = strconv.FormatInt(int64(time.Since(epoch)), 10)
		body, err := json.Marshal(&s)
		if err != nil {
			return err
		}
		return b.Publish(topic, &broker.Message{Body: body})
	}
	// Wait until the subscription delivers.
	ready := false
	for i := 0; i < 50 && !ready; i++ {
		if err := publish(); err != nil {
			fail("publish: %v", err)
		}
		select {
		case <-got:
			ready = true
		case <-time.After(200 * time.Millisecond):
		}
	}
	if !ready {
		fail("no message arrived within 10 s")
	}
	drain := func() {
		for {
			select {
			case <-got:
			default:
				return
			}
		}
	}
	round := func(d time.Duration, lat int) Result {
		drain()
		var res Result
		start := time.Now()
		deadline := start.Add(d)
		var sent, failed int64
		var wg sync.WaitGroup
		for i := 0; i < *publishers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) && atomic.LoadInt64(&failed) < 100 {
					if err := publish(); err != nil {
						atomic.AddInt64(&failed, 1)
						continue
					}
					atomic.AddInt64(&sent, 1)
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		var received int64
		last := start
		finished := false
	loop:
		for {
			if finished && received >= atomic.LoadInt64(&sent) {
				break
			}
			select {
			case <-got:
				received++
				last = time.Now()
			case <-done:
				finished = true
				done = nil
			case <-time.After(2 * time.Second):
				if finished {
					break loop
				}
			}
			if time.Now().After(deadline.Add(10 * time.Second)) {
				break
			}
		}
		res.Count = received
		res.Secs = last.Sub(start).Seconds()
		res.Errors = atomic.LoadInt64(&sent) - received + atomic.LoadInt64(&failed)
		drain()
		for i := 0; i < lat; i++ {
			mine := int64(time.Since(epoch))
			if err := publish(); err != nil {
				res.Errors++
				continue
			}
			// Late messages of the throughput phase are skipped: only this one is timed.
			timeout := time.After(2 * time.Second)
		wait:
			for {
				select {
				case r := <-got:
					if r.sent >= mine {
						res.LatNs = append(res.LatNs, r.at-r.sent)
						break wait
					}
				case <-timeout:
					res.Errors++
					break wait
				}
			}
		}
		return res
	}
	round(*warmup, *latMsgs/4)
	emit(round(*duration, *latMsgs))
}

func main() {
	logger.DefaultLogger = logger.NewLogger(logger.WithLevel(logger.ErrorLevel), logger.WithOutput(os.Stderr))
	if len(os.Args) < 2 {
		fail("usage: gomicro-bench rpc|mqtt|nats [flags]")
	}
	switch os.Args[1] {
	case "rpc":
		runRPC(os.Args[2:])
	case "mqtt", "nats":
		runPubSub(os.Args[1], os.Args[2:])
	default:
		fail("unknown mode %q", os.Args[1])
	}
}
