// natsbench: the NATS JetStream peer of mqbench in bench/bench_all.sh. It publishes bodies of
// S incompressible bytes to a JetStream stream for a duration over P connections and prints one
// line that bench/lib.sh parses like mqbench's:
//
//	SUMMARY mode=<sync|async> ok=N failed=N unknown=0 seconds=S tps=N avg_ms=X p50_ms=X p99_ms=X p999_ms=X
//
// Modes:
//
//	sync   (default) P goroutines, each on its own connection, each js.Publish waits for the
//	       stream's ack before the next one
//	async  (-a) P connections, each with I js.PublishAsync acks in flight at most (a semaphore;
//	       the ack futures are collected in publish order, which is the order one stream acks
//	       the messages of one connection)
//
// Latency: from the publish call to the ack, per message. -create (re)creates the stream on
// file storage (old messages discarded past -maxbytes, as the Redis peer's MAXLEN ~ cap) and exits.
//
// Built offline from Debian's sources (golang-go, golang-github-nats-io-go-nats-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o natsbench bench/nats/natsbench.go
package main

import (
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

type result struct {
	ok, failed uint64
	lat        []time.Duration
}

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "natsbench: "+format+"\n", args...)
	os.Exit(1)
}

func connect(url string) (*nats.Conn, nats.JetStreamContext) {
	nc, err := nats.Connect(url, nats.Name("natsbench"), nats.MaxReconnects(0))
	if err != nil {
		die("connect %s: %v", url, err)
	}
	// The PublishAsync cap is enforced by our own semaphore; nats.go's must never stall first.
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(1 << 20))
	if err != nil {
		die("jetstream: %v", err)
	}
	return nc, js
}

// body returns a fresh copy of the random body with a per-message sequence number in front, so
// no two messages are equal (JetStream 2.9 does not compress stored messages anyway).
func body(base []byte, seq uint64) []byte {
	b := make([]byte, len(base))
	copy(b, base)
	if len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, seq)
	}
	return b
}

func syncWorker(js nats.JetStreamContext, subj string, base []byte, deadline time.Time, r *result) {
	for seq := uint64(0); time.Now().Before(deadline); seq++ {
		b := body(base, seq)
		t0 := time.Now()
		if _, err := js.Publish(subj, b); err != nil {
			r.failed++
			continue
		}
		r.lat = append(r.lat, time.Since(t0))
		r.ok++
	}
}

type pending struct {
	f  nats.PubAckFuture
	t0 time.Time
}

func asyncWorker(js nats.JetStreamContext, subj string, base []byte, inflight int, deadline time.Time, r *result) {
	sem := make(chan struct{}, inflight)
	q := make(chan pending, inflight)
	done := make(chan struct{})
	go func() { // the collector: acks in publish order
		defer close(done)
		for p := range q {
			if p.f == nil {
				r.failed++
				<-sem
				continue
			}
			select {
			case <-p.f.Ok():
				r.lat = append(r.lat, time.Since(p.t0))
				r.ok++
			case <-p.f.Err():
				r.failed++
			case <-time.After(10 * time.Second):
				r.failed++
			}
			<-sem
		}
	}()
	for seq := uint64(0); time.Now().Before(deadline); seq++ {
		sem <- struct{}{}
		b := body(base, seq)
		t0 := time.Now()
		f, err := js.PublishAsync(subj, b)
		if err != nil {
			f = nil // the collector counts it as failed
		}
		q <- pending{f: f, t0: t0}
	}
	close(q)
	<-done
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i].Nanoseconds()) / 1e6
}

func main() {
	url := flag.String("url", nats.DefaultURL, "NATS server URL")
	stream := flag.String("stream", "BENCH", "JetStream stream name")
	subj := flag.String("subject", "bench", "subject (the stream's only subject)")
	create := flag.Bool("create", false, "(re)create the stream on file storage and exit")
	maxBytes := flag.Int64("maxbytes", 256<<20, "with -create: the stream's byte cap (oldest discarded)")
	async := flag.Bool("a", false, "async mode: PublishAsync with -i acks in flight per connection")
	conns := flag.Int("p", 1, "connections (sync mode: one publishing goroutine each)")
	inflight := flag.Int("i", 16, "async mode: acks in flight per connection")
	size := flag.Int("s", 1024, "body bytes")
	secs := flag.Float64("d", 4, "seconds to publish")
	flag.Parse()

	if *create {
		nc, js := connect(*url)
		defer nc.Close()
		if err := js.DeleteStream(*stream); err != nil && err != nats.ErrStreamNotFound {
			die("delete stream %s: %v", *stream, err)
		}
		_, err := js.AddStream(&nats.StreamConfig{Name: *stream, Subjects: []string{*subj},
			Storage: nats.FileStorage, Replicas: 1, MaxBytes: *maxBytes, Discard: nats.DiscardOld})
		if err != nil {
			die("add stream %s: %v", *stream, err)
		}
		return
	}
	if *conns < 1 || *inflight < 1 || *size < 0 || *secs <= 0 {
		die("bad arguments")
	}
	base := make([]byte, *size)
	if _, err := rand.Read(base); err != nil {
		die("random body: %v", err)
	}
	ncs := make([]*nats.Conn, *conns)
	jss := make([]nats.JetStreamContext, *conns)
	for i := range ncs {
		ncs[i], jss[i] = connect(*url)
	}
	res := make([]result, *conns)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(time.Duration(*secs * float64(time.Second)))
	for i := range ncs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if *async {
				asyncWorker(jss[i], *subj, base, *inflight, deadline, &res[i])
			} else {
				syncWorker(jss[i], *subj, base, deadline, &res[i])
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	for _, nc := range ncs {
		nc.Close()
	}
	var ok, failed uint64
	var all []time.Duration
	var sum time.Duration
	for i := range res {
		ok += res[i].ok
		failed += res[i].failed
		all = append(all, res[i].lat...)
	}
	for _, d := range all {
		sum += d
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	mode := "sync"
	if *async {
		mode = "async"
	}
	avg := 0.0
	if ok > 0 {
		avg = float64(sum.Nanoseconds()) / float64(ok) / 1e6
	}
	fmt.Printf("SUMMARY mode=%s ok=%d failed=%d unknown=0 seconds=%.3f tps=%.0f avg_ms=%.3f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f\n",
		mode, ok, failed, elapsed, float64(ok)/elapsed, avg, pct(all, 0.5), pct(all, 0.99), pct(all, 0.999))
}
