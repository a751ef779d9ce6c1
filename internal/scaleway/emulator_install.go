package scaleway

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// Fault points of the order-now-install-later flow.
const (
	FaultUpdateServer  = "scaleway.update-server"
	FaultInstallServer = "scaleway.install-server"
)

// wireUpdateServer is the body of PATCH .../servers/{id}: every field is
// optional and only what is present changes (the SDK's UpdateServerRequest).
type wireUpdateServer struct {
	Name        *string   `json:"name"`
	Description *string   `json:"description"`
	Tags        *[]string `json:"tags"`
	Protected   *bool     `json:"protected"`
	UserData    *[]byte   `json:"user_data"`
}

// wireInstallServer is the body of POST .../servers/{id}/install.
type wireInstallServer struct {
	OSID      string   `json:"os_id"`
	Hostname  string   `json:"hostname"`
	SSHKeyIDs []string `json:"ssh_key_ids"`
	// UserData here is deprecated upstream: user data belongs to the
	// server (PATCH), which is what this emulator honours.
	UserData *string `json:"user_data"`
}

type wirePrecondition struct {
	Message      string `json:"message"`
	Precondition string `json:"precondition"`
	HelpMessage  string `json:"help_message"`
	Type         string `json:"type"`
}

func preconditionFailed(w http.ResponseWriter, help string) {
	emulator.WriteJSON(w, http.StatusPreconditionFailed, wirePrecondition{
		Message: "precondition is not respected", Precondition: "resource_not_usable",
		HelpMessage: help, Type: "precondition_failed",
	})
}

// updateServer changes a server's name, description, tags or user data.
// User data is kept with the server and returned by every GET, which is why
// a client that puts a secret there must overwrite it once it is used.
func (e *Emulator) updateServer(w http.ResponseWriter, r *http.Request) {
	var req wireUpdateServer
	if !e.begin(w, r, "update-server", FaultUpdateServer, &req) {
		return
	}
	id := r.PathValue("id")
	e.mu.Lock()
	s, ok := e.servers[id]
	if !ok || s.wire.Zone != r.PathValue("zone") {
		e.mu.Unlock()
		notFound(w)
		return
	}
	if s.wire.Status == "deleting" {
		e.mu.Unlock()
		preconditionFailed(w, "server is being deleted")
		return
	}
	if req.UserData != nil {
		offer := e.offers[s.wire.OfferID]
		if !slices.Contains(offer.Tags, cloudInitTag) {
			e.mu.Unlock()
			emulator.WriteJSON(w, http.StatusServiceUnavailable, wireMessage{Message: cloudInitUnsupported})
			return
		}
		s.wire.UserData = slices.Clone(*req.UserData)
	}
	if req.Name != nil {
		s.wire.Name = *req.Name
	}
	if req.Description != nil {
		s.wire.Description = *req.Description
	}
	if req.Tags != nil {
		s.wire.Tags = slices.Clone(*req.Tags)
	}
	if req.Protected != nil {
		s.wire.Protected = *req.Protected
	}
	s.wire.UpdatedAt = time.Now().UTC()
	ws := cloneWire(s.wire)
	e.mu.Unlock()
	emulator.WriteJSON(w, http.StatusOK, ws)
}

// installServer starts an OS install on a delivered server, with the user
// data the server carries at that moment. Like the real API it refuses a
// server that is not ready yet or already installing.
func (e *Emulator) installServer(w http.ResponseWriter, r *http.Request) {
	var req wireInstallServer
	if !e.begin(w, r, "install-server", FaultInstallServer, &req) {
		return
	}
	id := r.PathValue("id")
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.servers[id]
	if !ok || s.wire.Zone != r.PathValue("zone") {
		notFound(w)
		return
	}
	if s.wire.Status != "ready" {
		preconditionFailed(w, "server must be ready to be installed, it is "+s.wire.Status)
		return
	}
	if s.wire.Install != nil && (s.wire.Install.Status == "to_install" || s.wire.Install.Status == "installing") {
		preconditionFailed(w, "an installation is already in progress")
		return
	}
	create := wireCreateServer{OfferID: s.wire.OfferID}
	create.Install = &struct {
		OSID      string   `json:"os_id"`
		Hostname  string   `json:"hostname"`
		SSHKeyIDs []string `json:"ssh_key_ids"`
	}{OSID: req.OSID, Hostname: req.Hostname, SSHKeyIDs: req.SSHKeyIDs}
	if s.wire.UserData != nil {
		ud := s.wire.UserData
		create.UserData = &ud
	}
	if msg := e.checkInstall(&create, e.offers[s.wire.OfferID]); msg != nil {
		emulator.WriteJSON(w, http.StatusBadRequest, *msg)
		return
	}
	e.beginInstall(s, req.OSID, req.Hostname, req.SSHKeyIDs)
	s.wire.UpdatedAt = time.Now().UTC()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(e.delays.StartInstall, func() { e.advance(id) })
	emulator.WriteJSON(w, http.StatusOK, cloneWire(s.wire))
}

// begin is every body-carrying handler's start: count the call, draw its
// fault, decode the JSON body (a 400 in Scaleway's shape when it is not).
// false means the answer was written.
func (e *Emulator) begin(w http.ResponseWriter, r *http.Request, counter, fault string, req any) bool {
	e.counters.Inc(counter)
	if e.fault(w, r, fault) {
		return false
	}
	if err := json.NewDecoder(r.Body).Decode(req); err != nil {
		emulator.WriteJSON(w, http.StatusBadRequest, invalidArgument("body", "format", "request body is not valid JSON"))
		return false
	}
	return true
}
