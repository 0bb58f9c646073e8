package anomaly

import (
	"time"

	"github.com/enms/enms-analytics/store"
)

// abnormalRank orders the modes that suppress scoring, worst first.
var abnormalRank = map[string]int{"fault": 3, "maintenance": 2, "offline": 1}

// suppression says why an hour must not be scored, or "" when it may be:
//   - the mode (fault, maintenance or offline, the worst one) of any status
//     period overlapping the hour, by machine_status_history, else the
//     abnormal mode the hour's production rollup saw;
//   - "warmup" when such a period ended less than warmup before the hour
//     began (the machine is settling after returning to running).
func suppression(periods []store.StatusPeriod, in store.AnomalyInput, warmup time.Duration) string {
	h0, h1 := in.Hour, in.Hour.Add(time.Hour)
	worst := ""
	for _, p := range periods {
		if abnormalRank[p.Mode] == 0 {
			continue
		}
		if p.ValidFrom.Before(h1) && (p.ValidTo == nil || p.ValidTo.After(h0)) && abnormalRank[p.Mode] > abnormalRank[worst] {
			worst = p.Mode
		}
	}
	if worst != "" {
		return worst
	}
	if in.AbnormalMode != "" {
		return in.AbnormalMode
	}
	for _, p := range periods {
		if abnormalRank[p.Mode] > 0 && p.ValidTo != nil && !p.ValidTo.After(h0) && p.ValidTo.After(h0.Add(-warmup)) {
			return "warmup"
		}
	}
	return ""
}
