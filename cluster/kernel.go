package cluster

// ForRole returns the kernel profile of role (RoleDirector or
// RoleRealServer), or false for another role.
func (k *Kernel) ForRole(role string) (*RoleKernel, bool) {
	switch role {
	case RoleDirector:
		return &k.Director, true
	case RoleRealServer:
		return &k.RealServer, true
	}
	return nil, false
}

// Release is the kernel release lvsforge builds for role, e.g. 6.1.192-lvs:
// the version and the role's local version, as `make kernelrelease` says.
func (s *Spec) Release(role string) string {
	rk, _ := s.Kernel.ForRole(role)
	if rk == nil {
		return s.Kernel.Version
	}
	return s.Kernel.Version + rk.LocalVersion
}
