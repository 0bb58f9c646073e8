package listener

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"

	"github.com/enms/enms-analytics/triggers"
)

// notifyHandler handles one channel: it only records the notification and
// wakes a claim loop (a non-blocking send), never touching the database, so
// the LISTEN connection is never held up.
type notifyHandler struct {
	w       *Worker
	channel string
	wake    func()
	parse   func(string) error // validates the payload, for the log only
}

func (h notifyHandler) HandleNotification(ctx context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	h.w.lastNotification.Store(time.Now().UnixNano())
	h.w.metrics.notifications.WithLabelValues(h.channel).Inc()
	if h.parse != nil {
		if err := h.parse(n.Payload); err != nil {
			h.w.log.Warn("unexpected notification payload", "channel", h.channel, "err", err)
		}
	}
	h.wake()
	return nil
}

// HandleBacklog is called by pgxlisten right after each LISTEN on a new
// connection. Once every channel of the connection is listened on, the
// claim loops are woken to drain what was written while no one listened.
func (h notifyHandler) HandleBacklog(ctx context.Context, _ string, conn *pgx.Conn) error {
	w := h.w
	w.mu.Lock()
	if w.listenConn != conn {
		w.listenConn, w.listenChannels = conn, 0
	}
	w.listenChannels++
	all := w.listenChannels == len(triggers.ListenedChannels)+1 // + the ping channel
	w.mu.Unlock()
	if all {
		w.connected.Store(true)
		w.metrics.connected.Set(1)
		w.metrics.reconnects.Inc()
		w.lastNotification.Store(time.Now().UnixNano())
		w.listenEpoch.Add(1)
		w.log.Info("listening", "channels", len(triggers.ListenedChannels))
		wake(w.eventWake)
		wake(w.trainWake)
	}
	return nil
}

// connect opens the LISTEN connection: a fresh connection on every call,
// never one borrowed from the pool, so a dropped connection is simply
// replaced.
func (w *Worker) connect(ctx context.Context) (*pgx.Conn, error) {
	if w.cfg.Connect != nil {
		return w.cfg.Connect(ctx)
	}
	cc := w.st.Pool().Config().ConnConfig.Copy()
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["application_name"] = w.cfg.ApplicationName
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("open LISTEN connection: %w", err)
	}
	return conn, nil
}

// listen runs pgxlisten until ctx is done. A heartbeat replaces the
// connection when a ping sent through the pool does not come back on it.
func (w *Worker) listen(ctx context.Context) {
	for ctx.Err() == nil {
		lctx, lcancel := context.WithCancel(ctx)
		l := &pgxlisten.Listener{
			Connect:        w.connect,
			ReconnectDelay: w.cfg.ReconnectDelay,
			LogError: func(ctx context.Context, err error) {
				w.connected.Store(false)
				w.metrics.connected.Set(0)
				if ctx.Err() == nil {
					w.log.Warn("listener connection lost; reconnecting", "err", err, "delay", w.cfg.ReconnectDelay)
				}
			},
		}
		l.Handle(string(triggers.ChannelHourClosed), notifyHandler{w: w, channel: string(triggers.ChannelHourClosed),
			wake: func() { wake(w.eventWake) }, parse: parseMachine})
		l.Handle(string(triggers.ChannelStatusChanged), notifyHandler{w: w, channel: string(triggers.ChannelStatusChanged),
			wake: func() { wake(w.eventWake) }, parse: parseMachine})
		l.Handle(string(triggers.ChannelTrainRequested), notifyHandler{w: w, channel: string(triggers.ChannelTrainRequested),
			wake: func() { wake(w.trainWake) }, parse: parseRequest})
		l.Handle(pingChannel, notifyHandler{w: w, channel: pingChannel, wake: func() { wake(w.pingEcho) }})

		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.heartbeat(lctx, lcancel)
		}()
		_ = l.Listen(lctx) // returns only when lctx is done
		lcancel()
		wg.Wait()
		w.connected.Store(false)
		w.metrics.connected.Set(0)
	}
}

func parseMachine(p string) error {
	_, err := triggers.ParseMachineNotification(p)
	return err
}

func parseRequest(p string) error {
	_, err := triggers.ParseRequestNotification(p)
	return err
}

// heartbeat pings the LISTEN connection when it has been idle for
// PingInterval: it notifies pingChannel through the pool and expects the
// notification back within PingTimeout. When it does not come, a half-open
// or stuck connection is presumed and restart replaces it.
func (w *Worker) heartbeat(ctx context.Context, restart context.CancelFunc) {
	t := time.NewTicker(w.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, w.lastNotification.Load()))
		if !w.connected.Load() || idle < w.cfg.PingInterval {
			continue
		}
		select { // forget an old echo
		case <-w.pingEcho:
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, w.cfg.PingTimeout)
		_, err := w.st.Pool().Exec(pctx, `SELECT pg_notify($1, $2)`, pingChannel, w.cfg.Name)
		if err == nil {
			select {
			case <-w.pingEcho:
			case <-pctx.Done():
				err = fmt.Errorf("no echo within %s", w.cfg.PingTimeout)
			}
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			w.log.Warn("listener ping failed; replacing the connection", "err", err)
			restart()
			return
		}
	}
}
