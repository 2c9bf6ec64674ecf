package bridge

// Defaults returns the settings New gives a Config that leaves them unset, for the generic
// profile: the one source of the bridge's defaults, for documentation and `edgegw check`.
// A profile (aws-iot-core, azure-iot-hub) changes some of them; see applyProfile.
func Defaults() Config {
	var c Config
	c.setDefaults()
	return c
}
