package listener

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/enms/enms-analytics/internal/workertest"
	"github.com/enms/enms-analytics/triggers"
)

// freezingProxy forwards TCP connections to target on the loopback
// interface until frozen; then it stops forwarding without closing
// anything, which is what a half-open connection looks like to both ends.
type freezingProxy struct {
	ln     net.Listener
	target string
	frozen chan struct{}
	freeze sync.Once
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, target: target, frozen: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *freezingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

// pipe copies from src to dst in small steps, and stops copying (but keeps
// both ends open) once frozen.
func (p *freezingProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.frozen:
			io.Copy(io.Discard, src) // swallow until closed
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezingProxy) close() {
	p.freeze.Do(func() { close(p.frozen) })
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestIdlePingReplacesHalfOpenConnection: the LISTEN connection goes
// through a proxy that then stops forwarding without closing (a half-open
// link: no error ever reaches the worker). The idle ping notices the missing
// echo, the worker reconnects, and events written meanwhile are handled.
func TestIdlePingReplacesHalfOpenConnection(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 3)
	u, err := url.Parse(b.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFreezingProxy(t, u.Host)
	var connects atomic.Int32
	connect := func(ctx context.Context) (*pgx.Conn, error) {
		cc := b.pool.Config().ConnConfig.Copy()
		if connects.Add(1) == 1 { // the first connection goes through the proxy
			addr := proxy.ln.Addr().(*net.TCPAddr)
			cc.Host, cc.Port = addr.IP.String(), uint16(addr.Port)
		}
		return pgx.ConnectConfig(ctx, cc)
	}
	rec := newRecorder()
	w := newWorker(t, b, Config{Connect: connect, PingInterval: 50 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	w.Handle(triggers.KindHourClosed, rec.handle)
	workertest.Start(t, w)
	epoch := w.listenEpoch.Load()

	proxy.freeze.Do(func() { close(proxy.frozen) })
	if err := closeHours(ctx, b.pool, ms, hours(hour0, 2)); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "6 events handled after the reconnect", func() bool { return rec.distinct() == 6 })
	if w.listenEpoch.Load() <= epoch || connects.Load() < 2 {
		t.Errorf("handled without a new LISTEN connection (epoch %d → %d, %d connects)", epoch, w.listenEpoch.Load(), connects.Load())
	}
	rec.checkOnceInOrder(t)
}
