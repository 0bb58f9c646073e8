package analytics

import (
	"math"
	"testing"
	"time"
)

// handTariffs: off-peak 0.08 from 22:00 to 06:00 every day (wraps
// midnight), peak 0.25 from 08:00 to 20:00 on weekdays (1–5; 0 = Sunday),
// and a flat 0.12 for every other hour.
func handTariffs() []Tariff {
	return []Tariff{
		{Rate: 0.08, TimeOfUse: true, StartHour: 22, EndHour: 6},
		{Rate: 0.25, TimeOfUse: true, StartHour: 8, EndHour: 20, Days: []int{1, 2, 3, 4, 5}},
		{Rate: 0.12},
	}
}

func TestTariffRate(t *testing.T) {
	t.Parallel()
	tr := handTariffs()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		at   string
		want float64
	}{
		{"2026-03-02T14:00:00Z", 0.25}, // Monday, inside 8→20
		{"2026-03-02T20:00:00Z", 0.12}, // 20 is the peak's exclusive end: flat
		{"2026-03-02T23:30:00Z", 0.08}, // after 22: off-peak
		{"2026-03-03T05:59:00Z", 0.08}, // before 6 (wrapped): off-peak
		{"2026-03-03T06:00:00Z", 0.12}, // 6 is the off-peak's end
		{"2026-03-01T14:00:00Z", 0.12}, // Sunday (0) is not in 1–5: flat
	} {
		if got := TariffRate(tr, at(c.at)); got != c.want {
			t.Errorf("rate at %s = %v, want %v", c.at, got, c.want)
		}
	}
	if got := TariffRate(nil, at("2026-03-02T14:00:00Z")); got != DefaultTariffRate {
		t.Errorf("no tariff: %v, want the default %v", got, DefaultTariffRate)
	}
	// The highest matching time-of-use rate wins over a lower one.
	both := append(handTariffs(), Tariff{Rate: 0.30, TimeOfUse: true, StartHour: 13, EndHour: 15})
	if got := TariffRate(both, at("2026-03-02T14:00:00Z")); got != 0.30 {
		t.Errorf("overlapping tariffs: %v, want the highest, 0.30", got)
	}
}

// TestOptimalScheduleByHand: a 100 kW load for 3 h, between Monday
// 2026-03-02 14:00 and Tuesday 08:00 (UTC factory), under handTariffs, with
// a flat forecast of 50 kW except 150 kW from 22:00 to 24:00 and a peak
// threshold of 200 kW.
//
// Rates by starting hour (see handTariffs): 14–19 → 0.25, 20–21 → 0.12,
// 22–05 → 0.08, 06–07 → 0.12. A window costs 100 kW × Σ rates:
//
//	start 14:00 (baseline) 3 × 25      = 75
//	start 22:00 or 23:00   3 × 8       = 24, but 150 + 100 = 250 kW > 200: infeasible
//	start 00:00 … 03:00    3 × 8       = 24, peak 50 + 100 = 150 kW: feasible
//	start 04:00            8 + 8 + 12  = 28
//	start 21:00            12 + 8 + 8  = 28, touches 22:00: infeasible
//
// so the three cheapest feasible windows start at 00:00, 01:00, 02:00
// (ties broken by the earlier start), each 24 and saving 75 − 24 = 51.
// Candidates: starts 14:00 … 05:00 = 16, of which 2 + 1 (21:00) +
// 1 (20:00 touches 22:00) = 4 are infeasible.
func TestOptimalScheduleByHand(t *testing.T) {
	t.Parallel()
	mon := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var demand []DemandForecast
	for h := 12; h < 36; h++ {
		kw := 50.0
		if h == 22 || h == 23 {
			kw = 150
		}
		demand = append(demand, DemandForecast{Start: mon.Add(time.Duration(h) * time.Hour), KW: kw})
	}
	res, err := OptimalSchedule(ScheduleRequest{
		LoadKW: 100, Duration: 3 * time.Hour,
		EarliestStart: mon.Add(14 * time.Hour), LatestEnd: mon.Add(32 * time.Hour),
		PeakThresholdKW: 200, Tariffs: handTariffs(), Demand: demand,
	})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(res.Baseline.Cost-75) > 1e-9 {
		t.Errorf("baseline cost %v, want 75", res.Baseline.Cost)
	}
	if res.Candidates != 16 || res.Feasible != 12 {
		t.Errorf("candidates %d feasible %d, want 16 and 12", res.Candidates, res.Feasible)
	}
	if len(res.Windows) != 3 {
		t.Fatalf("%d windows, want 3", len(res.Windows))
	}
	for i, w := range res.Windows {
		want := mon.Add(time.Duration(24+i) * time.Hour)
		if !w.Start.Equal(want) || math.Abs(w.Cost-24) > 1e-9 || math.Abs(w.Savings-51) > 1e-9 || w.PeakDemandKW != 150 {
			t.Errorf("window %d: start %s cost %v savings %v peak %v; want %s, 24, 51, 150",
				i, w.Start, w.Cost, w.Savings, w.PeakDemandKW, want)
		}
	}
}

// TestOptimalScheduleHalfHours: a start at 13:30 pays half an hour of the
// 13:00 rate; the next candidate is 14:00. With 0.25 everywhere (peak
// 8→20 on a Monday), 1.5 h of 10 kW costs 10 × 1.5 × 0.25 = 3.75.
func TestOptimalScheduleHalfHours(t *testing.T) {
	t.Parallel()
	mon := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var demand []DemandForecast
	for h := 13; h < 20; h++ {
		demand = append(demand, DemandForecast{Start: mon.Add(time.Duration(h) * time.Hour), KW: 1})
	}
	res, err := OptimalSchedule(ScheduleRequest{
		LoadKW: 10, Duration: 90 * time.Minute,
		EarliestStart: mon.Add(13*time.Hour + 30*time.Minute), LatestEnd: mon.Add(16 * time.Hour),
		PeakThresholdKW: math.Inf(1), Tariffs: handTariffs(), Demand: demand,
	})
	if err != nil {
		t.Fatal(err)
	}
	// starts 13:30 and 14:00 (14:30 is not a whole hour; 15:00 ends 16:30 > 16:00)
	if res.Candidates != 2 || math.Abs(res.Baseline.Cost-3.75) > 1e-9 {
		t.Fatalf("candidates %d baseline %v, want 2 and 3.75", res.Candidates, res.Baseline.Cost)
	}
	if _, err := OptimalSchedule(ScheduleRequest{LoadKW: 10, Duration: time.Hour,
		EarliestStart: mon, LatestEnd: mon.Add(30 * time.Minute)}); err == nil {
		t.Error("a window shorter than the duration was accepted")
	}
}
