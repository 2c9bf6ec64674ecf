// Package brokerconf translates a validated config.Config into what the
// local broker runs with: broker.Options (listeners, their server keys
// opened through hw, their custom authorizers, the limits over the broker's
// own defaults) and the compiled rules set (gateway/rules), with every
// problem reported at the config file's line. `edgegw check` calls the same
// functions as the daemon (CompileRules, CheckAuthorizers), so a refusal
// reads the same in both.
//
// It sits between the config room and the runtime rooms: config must not
// import it (config imports no runtime package), and it must not import
// gateway (the wiring imports it), mochi, badger, prometheus or paho.
package brokerconf
