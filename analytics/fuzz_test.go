package analytics

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDriverList: a comma-separated driver list (as a request would carry
// it) is accepted exactly when it is non-empty, every name is known and none
// repeats. An unknown name is rejected naming it and listing the valid
// drivers; a repeat is rejected naming it. An accepted list builds a design
// whose groups follow the list and partition the columns, and whose row for
// an hour reporting every driver has one value per column. Never a panic.
func FuzzDriverList(f *testing.F) {
	for _, s := range []string{
		"production_count,outdoor_temp_c",
		strings.Join(DriverNames, ","),
		"hdd,cdd,temp_segments,hour_of_week",
		"hdd,hdd",
		"production_count,Production_Count",
		"outdoor_temp",
		"",
		",",
		"hour_of_day,weekday,hour_of_day",
		"temp_segments,\x00",
	} {
		f.Add(s, 12.5, int64(1767600000)) // 2026-01-05T08:00:00Z, a Monday
	}
	f.Fuzz(func(t *testing.T, list string, temp float64, unix int64) {
		var drivers []string
		if list != "" {
			drivers = strings.Split(list, ",")
		}
		err := ValidateDrivers(drivers)
		want := wantDriverError(drivers)
		if (err == nil) != (want == "") {
			t.Fatalf("ValidateDrivers(%q) = %v, want error %q", drivers, err, want)
		}
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, want) || !utf8.ValidString(msg) {
				t.Fatalf("ValidateDrivers(%q) = %q, want a sentence containing %q", drivers, msg, want)
			}
			if _, derr := NewDesign(drivers, DesignOptions{}); derr == nil || derr.Error() != msg {
				t.Fatalf("NewDesign(%q) = %v, want the validation error %q", drivers, derr, msg)
			}
			return
		}
		d, err := NewDesign(drivers, DesignOptions{DegreeBaseC: 18})
		if err != nil {
			t.Fatalf("NewDesign(%q): %v", drivers, err)
		}
		if len(d.Groups) != len(drivers) {
			t.Fatalf("%d groups for %d drivers", len(d.Groups), len(drivers))
		}
		next := 0
		for i, g := range d.Groups {
			if g.Name != drivers[i] || len(g.Columns) == 0 {
				t.Fatalf("group %d is %+v, want driver %q with columns", i, g, drivers[i])
			}
			for _, c := range g.Columns {
				if c != next {
					t.Fatalf("group %q has column %d, want %d (groups must partition the columns in order)", g.Name, c, next)
				}
				next++
			}
		}
		if next != len(d.Columns) {
			t.Fatalf("groups cover %d of %d columns", next, len(d.Columns))
		}
		if math.IsNaN(temp) || math.IsInf(temp, 0) {
			return
		}
		row := HourlyRow{Hour: time.Unix(unix, 0).UTC().Truncate(time.Hour), EnergyKWh: 10,
			ProductionCount: 100, OutdoorTempC: temp, OperatingHours: 1, PressureBar: 7, MaterialMoisturePct: 3}
		x, ok := d.Row(row)
		if !ok || len(x) != len(d.Columns) {
			t.Fatalf("Row of a fully reported hour: ok=%v, %d values for %d columns", ok, len(x), len(d.Columns))
		}
		if missing := d.Missing(row); len(missing) != 0 {
			t.Fatalf("a fully reported hour misses %v", missing)
		}
		for _, g := range d.Groups {
			if g.Name != DriverTempSegments {
				continue
			}
			var sum float64
			for _, c := range g.Columns {
				sum += x[c]
			}
			// The segments sum to T (Mathieu et al. 2011, eq. 7); the
			// tolerance is a few ulps of the largest magnitude involved.
			if tol := 1e-12 * math.Max(1, math.Abs(temp)); math.Abs(sum-temp) > tol {
				t.Fatalf("temp_segments of %v sum to %v", temp, sum)
			}
		}
	})
}

// wantDriverError is what ValidateDrivers must say about drivers, judged
// independently: "" when the list is valid, else a fragment the error must
// contain.
func wantDriverError(drivers []string) string {
	if len(drivers) == 0 {
		return "valid drivers are " + strings.Join(DriverNames, ", ")
	}
	for i, d := range drivers {
		if !slices.Contains(DriverNames, d) {
			return "unknown driver " + strconv.Quote(d) + "; valid drivers are " + strings.Join(DriverNames, ", ")
		}
		if slices.Contains(drivers[:i], d) {
			return strconv.Quote(d) + " is listed twice"
		}
	}
	return ""
}
