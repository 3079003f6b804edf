package vmtests

import (
	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/ipvs"
)

// The scenarios take who serves what, with which weight and method, from
// the IPVS model lvsforge renders (ipvs.Build), never from the spec's
// hosts again.

// virtualOf is spec's service sv in the model.
func virtualOf(spec *cluster.Spec, sv *cluster.Service) *ipvs.Service {
	return ipvs.Build(spec).Named(sv.Name)
}

// servicesOf are the spec's services real server h serves, in spec order.
func servicesOf(spec *cluster.Spec, h *cluster.Host) []*cluster.Service {
	var out []*cluster.Service
	for _, vs := range ipvs.Build(spec).ServicesOf(h.Name) {
		out = append(out, spec.Service(vs.Name))
	}
	return out
}

// methodOf is how the directors forward to real server h ("" when it
// serves nothing).
func methodOf(spec *cluster.Spec, h *cluster.Host) ipvs.Method {
	for _, vs := range ipvs.Build(spec).ServicesOf(h.Name) {
		return vs.Method
	}
	return ""
}

// weightOf is real server h's weight for service sv in the model (0 when
// it does not serve it).
func weightOf(spec *cluster.Spec, h *cluster.Host, sv *cluster.Service) int {
	if d := virtualOf(spec, sv).DestOf(h.Name); d != nil {
		return d.Weight
	}
	return 0
}
