package machineconfig

// MetalMode is the validation mode (validation.RuntimeMode) of a Talos node
// installed on bare metal, which is what every config here is for: such a
// config must carry an install disk.
type MetalMode struct{}

func (MetalMode) String() string        { return "metal" }
func (MetalMode) RequiresInstall() bool { return true }
func (MetalMode) InContainer() bool     { return false }
