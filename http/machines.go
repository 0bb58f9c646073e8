package http

import (
	nethttp "net/http"

	"github.com/uptrace/bunrouter"

	"github.com/enms/enms-analytics/store"
)

// MaxMachines is the largest limit /machines accepts.
const MaxMachines = 1000

type machineListResponse struct {
	Count    int             `json:"count"`
	Machines []store.Machine `json:"machines"`
}

type machineResponse struct {
	store.Machine
	// CurrentStatus is the row of machine_status; null when the machine has
	// never reported one.
	CurrentStatus *store.MachineStatus `json:"current_status"`
	// StatusHistory is the most recent status periods, newest first.
	StatusHistory []store.StatusPeriod `json:"status_history"`
	// StatusHistoryAvailable is false on a database without the
	// machine_status_history table.
	StatusHistoryAvailable bool `json:"status_history_available"`
}

func (s *Server) listMachines(w nethttp.ResponseWriter, req bunrouter.Request) error {
	p := queryOf(req)
	var f store.MachineFilter
	var err error
	if f.FactoryID, err = p.optionalUUID("factory_id"); err != nil {
		return err
	}
	if f.Type, err = p.enum("type", store.MachineTypes, "", false); err != nil {
		return err
	}
	if f.Active, err = p.boolean("active"); err != nil {
		return err
	}
	if f.Limit, err = p.limit(MaxMachines, MaxMachines); err != nil {
		return err
	}
	if f.Offset, err = p.offset(); err != nil {
		return err
	}
	ms, err := s.cfg.Store.ListMachines(req.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, machineListResponse{Count: len(ms), Machines: ms})
	return nil
}

// MaxStatusHistory is the largest history_limit /machines/{id} accepts.
const MaxStatusHistory = 1000

func (s *Server) getMachine(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, err := pathUUID(req, "id")
	if err != nil {
		return err
	}
	p := queryOf(req)
	limit, err := p.limit(100, MaxStatusHistory)
	if err != nil {
		return err
	}
	m, err := s.cfg.Store.Machine(req.Context(), id)
	if err != nil {
		return machineNotFound(err, id)
	}
	resp := machineResponse{Machine: m}
	if resp.CurrentStatus, err = s.cfg.Store.CurrentStatus(req.Context(), id); err != nil {
		return err
	}
	if resp.StatusHistory, resp.StatusHistoryAvailable, err = s.cfg.Store.StatusHistory(req.Context(), id, limit); err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}
