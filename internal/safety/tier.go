package safety

import "fmt"

// Tier is a device's layer in its service. Tiers patch in the order of the
// constants.
type Tier string

// The tiers, in patching order.
const (
	Backend  Tier = "backend"
	Middle   Tier = "middle"
	Frontend Tier = "frontend"
)

// Tiers lists the tiers in patching order.
var Tiers = [...]Tier{Backend, Middle, Frontend}

// ParseTier reads a tier as the schedule-request webhook carries it.
func ParseTier(s string) (Tier, error) {
	t := Tier(s)
	if t.rank() < 0 {
		return "", fmt.Errorf("safety: tier %q: want backend, middle or frontend", s)
	}
	return t, nil
}

// rank is the tier's position in patching order, -1 for an unknown tier.
func (t Tier) rank() int {
	switch t {
	case Backend:
		return 0
	case Middle:
		return 1
	case Frontend:
		return 2
	}
	return -1
}
