package simulator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultHistoryStep is the step of backfilled history: one reading per
// minute per machine and table (a machine's sampling interval when that is
// longer). Energy stays exact at any step; the minute keeps 60 days of the
// demo plant at 1.8 million rows, loadable in well under a minute.
const DefaultHistoryStep = time.Minute

// BackfillOptions says what to backfill.
type BackfillOptions struct {
	// From and To bound the period [From, To). Required.
	From, To time.Time
	// Step is the history step; zero means DefaultHistoryStep. It is
	// adjusted per machine with StepFor.
	Step time.Duration
	// Progress, when set, is called after each chunk is written (from
	// the writers' goroutines, one call at a time).
	Progress func(Progress)
	// Writers is the number of connections writing in parallel, each for
	// its own share of the machines; zero means DefaultWriters.
	Writers int
}

// DefaultWriters is the number of parallel writers of a backfill: two, so
// the database can run the rollup triggers of one chunk while another COPY
// streams in.
const DefaultWriters = 2

// Progress reports a running backfill.
type Progress struct {
	Done, Total time.Duration // simulated time written, of the period
	Rows        int64         // telemetry rows written so far (all three tables)
	Elapsed     time.Duration
}

// BackfillResult summarises a finished backfill.
type BackfillResult struct {
	Rows     int64              // telemetry rows written (three per reading)
	Readings int64              // readings (steps) written
	Machines int                // machines that needed data
	End      map[UUID]time.Time // per machine, where its data now ends (the next step's start)
	Elapsed  time.Duration
}

// chunkRows is the target number of readings per write: day-sized chunks for
// history, hour-sized when a day would exceed it, so the rollup triggers see
// statements of a few thousand to some ten thousand rows.
const chunkRows = 60000

// Backfill writes the machines' telemetry for [From, To). A machine that
// already has readings in the period continues after its latest one, so a
// rerun writes only what is missing. Generation runs one chunk ahead of the
// database writes. Each chunk is one transaction of COPYs, so the rollup
// triggers see whole days (or hours) at once.
func Backfill(ctx context.Context, pool *pgxpool.Pool, g *Generator, machines []Machine, opt BackfillOptions) (BackfillResult, error) {
	started := time.Now()
	res := BackfillResult{End: map[UUID]time.Time{}}
	if len(machines) == 0 {
		return res, ErrNoMachines
	}
	if !opt.To.After(opt.From) {
		return res, fmt.Errorf("backfill: the period %s – %s is empty; want from before to", opt.From.Format(time.RFC3339), opt.To.Format(time.RFC3339))
	}
	step := opt.Step
	if step == 0 {
		step = DefaultHistoryStep
	}
	last, err := LastReadings(ctx, pool, machines, opt.From, opt.To)
	if err != nil {
		return res, err
	}
	var streams []*Stream
	perDay := 0.0
	for _, m := range machines {
		st := StepFor(m, step)
		from := opt.From
		if t, ok := last[m.ID]; ok {
			from = t.Add(time.Second)
		}
		from = ceilTo(from, st)
		res.End[m.ID] = from
		if !from.Add(st).After(opt.To) && !from.Equal(opt.To) {
			s, err := g.Stream(m, from, st)
			if err != nil {
				return res, err
			}
			streams = append(streams, s)
			perDay += float64(day) / st.Seconds()
		}
	}
	res.Machines = len(streams)
	if len(streams) == 0 {
		res.Elapsed = time.Since(started)
		return res, nil
	}
	chunk := 24 * time.Hour
	if perDay > chunkRows {
		chunk = time.Hour
	}

	writers := opt.Writers
	if writers <= 0 {
		writers = DefaultWriters
	}
	writers = min(writers, len(streams))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		done = make([]time.Time, writers) // per writer: simulated time written up to
	)
	total := opt.To.Sub(opt.From)
	for wi := range writers {
		var group []*Stream
		for i := wi; i < len(streams); i += writers {
			group = append(group, streams[i])
		}
		batches := make(chan *Batch, 1)
		wg.Add(2)
		go func() { // generate one chunk ahead of the writer
			defer wg.Done()
			defer close(batches)
			for c := opt.From.Truncate(chunk); c.Before(opt.To); c = c.Add(chunk) {
				end := c.Add(chunk)
				if end.After(opt.To) {
					end = opt.To
				}
				b := &Batch{}
				for _, s := range group {
					s.Next(end, b)
				}
				b.until = end
				select {
				case batches <- b:
				case <-ctx.Done():
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			w := NewWriter(pool, g.Seed())
			for b := range batches {
				var n int64
				if len(b.Readings) > 0 {
					var err error
					if n, err = w.Write(ctx, b); err != nil {
						cancel(fmt.Errorf("backfill: %w", err))
						return
					}
				}
				mu.Lock()
				res.Rows += n
				res.Readings += int64(len(b.Readings))
				done[wi] = b.until
				p := Progress{Done: slices.MinFunc(done, time.Time.Compare).Sub(opt.From), Total: total, Rows: res.Rows, Elapsed: time.Since(started)}
				if opt.Progress != nil && n > 0 {
					opt.Progress(Progress{Done: max(p.Done, 0), Total: total, Rows: p.Rows, Elapsed: p.Elapsed})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	for _, s := range streams {
		res.End[s.m.ID] = s.Pos()
	}
	res.Elapsed = time.Since(started)
	return res, nil
}

func ceilTo(t time.Time, step time.Duration) time.Time {
	f := t.Truncate(step)
	if f.Equal(t) {
		return t
	}
	return f.Add(step)
}

// LiveOptions says how to run live.
type LiveOptions struct {
	// From is the simulated time to start at, per machine (a machine
	// missing from the map starts at Start), moved past the machine's
	// latest stored reading; aligned up to the step.
	From map[UUID]time.Time
	// Start is the simulated time the clock starts at; zero means Now().
	Start time.Time
	// Step is the live step; zero means each machine's sampling interval.
	Step time.Duration
	// Speed is how many simulated seconds pass per wall-clock second;
	// zero means 1 (real time).
	Speed float64
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
	// Every is how often readings are written; zero means one second.
	Every time.Duration
	// Written, when set, is called after each write with the simulated
	// time written up to and the rows written.
	Written func(simulated time.Time, rows int64)
}

// Live writes telemetry as simulated time passes until ctx is done; it then
// returns nil. Simulated time runs Speed times as fast as the wall clock from
// Start, so at a speed above 1 the readings run ahead of the wall clock.
func Live(ctx context.Context, pool *pgxpool.Pool, g *Generator, machines []Machine, opt LiveOptions) error {
	if len(machines) == 0 {
		return ErrNoMachines
	}
	if opt.Speed == 0 {
		opt.Speed = 1
	}
	if !(opt.Speed > 0) {
		return fmt.Errorf("live: speed %v is not valid; want a positive factor", opt.Speed)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Every <= 0 {
		opt.Every = time.Second
	}
	wallStart := opt.Now()
	simStart := opt.Start
	if simStart.IsZero() {
		simStart = wallStart
	}
	// Never write over readings a previous run left (they may reach past
	// where a backfill stopped): start after each machine's latest one.
	latest, err := LastReadings(ctx, pool, machines, time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		return err
	}
	streams := make([]*Stream, 0, len(machines))
	for _, m := range machines {
		st := opt.Step
		if st == 0 {
			st = m.Interval
		}
		from, ok := opt.From[m.ID]
		if !ok {
			from = simStart
		}
		if t, ok := latest[m.ID]; ok && !t.Before(from) {
			from = t.Add(time.Second)
		}
		s, err := g.Stream(m, ceilTo(from, st), st)
		if err != nil {
			return err
		}
		streams = append(streams, s)
	}
	slice := time.Hour // never shorter than a step, so every slice advances
	for _, s := range streams {
		slice = max(slice, s.Step())
	}
	w := NewWriter(pool, g.Seed())
	ticker := time.NewTicker(opt.Every)
	defer ticker.Stop()
	var b Batch
	for {
		elapsed := opt.Now().Sub(wallStart)
		sim := simStart.Add(time.Duration(float64(elapsed) * opt.Speed))
		// Catch up in slices of an hour of plant time (or the longest step), so a long
		// gap (a restart days later) is not one enormous transaction.
		for ctx.Err() == nil {
			upTo := sim
			if next := earliest(streams).Add(slice); next.Before(upTo) {
				upTo = next
			}
			b.Reset()
			for _, s := range streams {
				s.Next(upTo, &b)
			}
			if len(b.Readings) > 0 {
				n, err := w.Write(ctx, &b)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("live: %w", err)
				}
				if opt.Written != nil {
					opt.Written(upTo, n)
				}
			}
			if !upTo.Before(sim) {
				break
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// earliest is the smallest position of the streams.
func earliest(streams []*Stream) time.Time {
	t := streams[0].Pos()
	for _, s := range streams[1:] {
		if p := s.Pos(); p.Before(t) {
			t = p
		}
	}
	return t
}
