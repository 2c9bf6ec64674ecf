package rules

import "github.com/edgegw/edgegw/gateway/rules/sql"

// The language's types that the engine's callers use, under the engine's
// name (gateway/rules/sql owns them).
type (
	// Message is one message as a rule sees it.
	Message = sql.Message
	// UserProperty is one MQTT 5 user property.
	UserProperty = sql.UserProperty
)

// SQLVersion is the one AWS IoT SQL version the gateway implements.
const SQLVersion = sql.Version
