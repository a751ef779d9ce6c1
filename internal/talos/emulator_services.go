package talos

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// serviceEventTypeURL is the type URL machined puts on service events; the
// machinery client's UnmarshalEvent matches on exactly this form.
const serviceEventTypeURL = "talos/runtime/machine.ServiceStateEvent"

// eventBuffer bounds how far a slow events subscriber may lag before it is dropped.
const eventBuffer = 256

type serviceState struct {
	id          string
	state       string
	healthKnown bool
	healthy     bool
	healthMsg   string
	lastChange  time.Time
	events      []*machine.ServiceEvent
}

func actionState(a machine.ServiceStateEvent_Action) string {
	s := strings.ToLower(a.String())
	return strings.ToUpper(s[:1]) + s[1:]
}

func (s *serviceState) health() *machine.ServiceHealth {
	return &machine.ServiceHealth{
		Unknown:     !s.healthKnown,
		Healthy:     s.healthy,
		LastMessage: s.healthMsg,
		LastChange:  timestamppb.New(s.lastChange),
	}
}

func (s *serviceState) info() *machine.ServiceInfo {
	return &machine.ServiceInfo{
		Id:     s.id,
		State:  s.state,
		Events: &machine.ServiceEvents{Events: append([]*machine.ServiceEvent(nil), s.events...)},
		Health: s.health(),
	}
}

// health is a service health update; nil keeps the current health.
type health struct {
	known, healthy bool
	msg            string
}

// setServiceLocked moves a service to a new state and publishes the event.
func (n *Node) setServiceLocked(id string, action machine.ServiceStateEvent_Action, msg string, h *health) {
	s, ok := n.services[id]
	if !ok {
		s = &serviceState{id: id}
		n.services[id] = s
	}
	now := n.now()
	s.state = actionState(action)
	if h != nil && (h.known != s.healthKnown || h.healthy != s.healthy || h.msg != s.healthMsg) {
		s.healthKnown, s.healthy, s.healthMsg, s.lastChange = h.known, h.healthy, h.msg, now
	}
	s.events = append(s.events, &machine.ServiceEvent{Msg: msg, State: s.state, Ts: timestamppb.New(now)})
	if id == ServiceKubelet {
		n.kubeletLocked(action == machine.ServiceStateEvent_RUNNING && s.healthy)
	}
	n.publishLocked(&machine.ServiceStateEvent{Service: id, Action: action, Message: msg, Health: s.health()})
}

func (n *Node) publishLocked(ev *machine.ServiceStateEvent) {
	value, err := proto.Marshal(ev)
	if err != nil {
		return // a generated message always marshals
	}
	n.eventSeq++
	e := &machine.Event{
		Data: &anypb.Any{TypeUrl: serviceEventTypeURL, Value: value},
		Id:   fmt.Sprintf("%020d", n.eventSeq),
	}
	n.events = append(n.events, e)
	for id, ch := range n.subs {
		select {
		case ch <- e:
		default:
			// A subscriber that cannot keep up is cut off rather than
			// blocking the node; its stream ends with an error.
			close(ch)
			delete(n.subs, id)
		}
	}
}

// subscribeLocked registers an events subscriber and returns the past events
// it asked for (tail < 0: all; 0: none; n: the last n).
func (n *Node) subscribeLocked(tail int32) (int, chan *machine.Event, []*machine.Event) {
	n.subSeq++
	ch := make(chan *machine.Event, eventBuffer)
	n.subs[n.subSeq] = ch
	var past []*machine.Event
	switch {
	case tail < 0:
		past = append(past, n.events...)
	case tail > 0:
		from := max(0, len(n.events)-int(tail))
		past = append(past, n.events[from:]...)
	}
	return n.subSeq, ch, past
}

func (n *Node) unsubscribe(id int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch, ok := n.subs[id]; ok {
		close(ch)
		delete(n.subs, id)
	}
}

func (n *Node) serviceList() []*machine.ServiceInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := make([]string, 0, len(n.services))
	for id := range n.services {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]*machine.ServiceInfo, 0, len(ids))
	for _, id := range ids {
		out = append(out, n.services[id].info())
	}
	return out
}

func (n *Node) serviceDelay(id string) time.Duration { return n.opts.ServiceDelays[id] }

// startServicesLocked brings the services up the way machined does after a
// reboot into a config: apid and trustd first, kubelet, and etcd waiting
// for the bootstrap.
func (n *Node) startServicesLocked() {
	if n.worker {
		n.startWorkerServicesLocked()
		return
	}
	for _, id := range []string{ServiceAPID, ServiceTrustd, ServiceKubelet} {
		n.setServiceLocked(id, machine.ServiceStateEvent_PREPARING, "Running pre state", &health{})
		n.scheduleLocked(n.serviceDelay(id), FaultServices, func() func() {
			n.setServiceLocked(id, machine.ServiceStateEvent_RUNNING, "Health check successful", &health{known: true, healthy: true})
			n.eventLocked(EventHealthyPrefix + id)
			return nil
		})
	}
	n.setServiceLocked(ServiceEtcd, machine.ServiceStateEvent_WAITING, "Waiting for network and time sync", &health{})
	if n.bootstrapped {
		// etcd data survived the reboot: no second bootstrap.
		n.startEtcdLocked()
		return
	}
	n.scheduleLocked(n.opts.EtcdReadyDelay, FaultBootstrap, func() func() {
		n.etcdReady = true
		n.setServiceLocked(ServiceEtcd, machine.ServiceStateEvent_PREPARING, "Running pre state: waiting for bootstrap", &health{})
		n.eventLocked(EventEtcdReady)
		n.tryJoinLocked()
		return nil
	})
}

// tryJoinLocked keeps looking for a healthy etcd member to join, as the etcd
// service of a control plane that is not the bootstrap node does; a
// firewall that keeps the members apart keeps it waiting forever.
func (n *Node) tryJoinLocked() {
	var found *etcdCluster
	every := max(n.opts.EtcdReadyDelay/4, time.Millisecond)
	n.keepTryingLocked(every, "", func() bool {
		found = n.joinEtcd()
		return found != nil
	}, func() {
		if n.bootstrapped {
			return // bootstrapped meanwhile: it is a member already
		}
		n.bootstrapped = true // its data directory now holds the cluster
		n.etcd = found
		found.add(n.hostnameLocked(), n.opts.PublicIP)
		n.startEtcdLocked()
	})
}

// startWorkerServicesLocked brings a worker up: apid at once, the kubelet
// only once it reached a control plane's trustd and API server.
func (n *Node) startWorkerServicesLocked() {
	n.setServiceLocked(ServiceAPID, machine.ServiceStateEvent_PREPARING, "Running pre state", &health{})
	n.scheduleLocked(n.serviceDelay(ServiceAPID), FaultServices, func() func() {
		n.setServiceLocked(ServiceAPID, machine.ServiceStateEvent_RUNNING, "Health check successful", &health{known: true, healthy: true})
		n.eventLocked(EventHealthyPrefix + ServiceAPID)
		return nil
	})
	n.setServiceLocked(ServiceKubelet, machine.ServiceStateEvent_WAITING, "Waiting for the control plane", &health{})
	every := max(n.serviceDelay(ServiceKubelet), time.Millisecond)
	n.keepTryingLocked(every, FaultServices, n.joinedControlPlane, func() {
		n.setServiceLocked(ServiceKubelet, machine.ServiceStateEvent_RUNNING, "Health check successful", &health{known: true, healthy: true})
		n.eventLocked(EventHealthyPrefix + ServiceKubelet)
		n.registerKubeletLocked()
	})
}

// startEtcdLocked runs etcd after the bootstrap and makes it healthy after
// its delay, unless a talos.services fault says otherwise.
func (n *Node) startEtcdLocked() {
	n.setServiceLocked(ServiceEtcd, machine.ServiceStateEvent_RUNNING, "Service started as goroutine", &health{known: true, msg: "waiting for etcd to become healthy"})
	n.scheduleLocked(n.serviceDelay(ServiceEtcd), FaultServices, func() func() {
		switch {
		case n.faults.Peek(FaultServices, emulator.Error):
			n.faults.Check(FaultServices)
			n.setServiceLocked(ServiceEtcd, machine.ServiceStateEvent_FAILED, "Condition failed: emulated etcd failure", &health{known: true, msg: "emulated etcd failure"})
		case n.faults.Peek(FaultServices, emulator.Never):
			// stays Running but unhealthy, as etcd without quorum does
		default:
			n.setServiceLocked(ServiceEtcd, machine.ServiceStateEvent_RUNNING, "Health check successful", &health{known: true, healthy: true})
			n.eventLocked(EventHealthyPrefix + ServiceEtcd)
			if cfg, err := configloader.NewFromBytes(n.cfgBytes); err == nil {
				n.startKubeLocked(cfg)
			}
		}
		return nil
	})
}
