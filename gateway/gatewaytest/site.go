package gatewaytest

import (
	"path/filepath"
	"testing"
)

// Registry is the test site's device registry: sensor-a, sensor-b (policy
// sensor), monitor (policy monitor), gone (disabled) and the load-* group.
const Registry = `version: 1
default: {policies: []}
things:
  - name: sensor-a
    policies: [sensor]
  - name: sensor-b
    policies: [sensor]
  - name: monitor
    policies: [monitor]
  - name: gone
    policies: [sensor]
    disabled: true
groups:
  - name: load-generators
    match: {name: "load-*"}
    policies: [sensor]
`

// SensorPolicy lets a thing publish under sensors/THING/ and receive cmd/THING.
const SensorPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/sensors/${iot:Connection.Thing.ThingName}/*"},
 {"Effect": "Allow", "Action": "iot:RetainPublish", "Resource": "topic/sensors/${iot:Connection.Thing.ThingName}/status"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/cmd/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": "iot:Receive", "Resource": "topic/cmd/${iot:Connection.Thing.ThingName}"}
]}`

// MonitorPolicy lets monitor* read sensors/# (not */secret) and publish cmd/*.
const MonitorPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/monitor*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "topicfilter/sensors/#"},
 {"Effect": "Allow", "Action": "iot:Receive", "Resource": "topic/sensors/*"},
 {"Effect": "Deny", "Action": "iot:Receive", "Resource": "topic/sensors/*/secret"},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/cmd/*"}
]}`

// WriteSite writes the test site into dir: devices.yaml (Registry) and
// policies/sensor.json, policies/monitor.json.
func WriteSite(t testing.TB, dir string) {
	t.Helper()
	WriteSiteFiles(t, dir, Registry, map[string]string{"sensor": SensorPolicy, "monitor": MonitorPolicy})
}

// WriteSiteFiles writes a site into dir: devices.yaml holding registry and
// policies/NAME.json for each policy document.
func WriteSiteFiles(t testing.TB, dir, registry string, policies map[string]string) {
	t.Helper()
	WriteFile(t, filepath.Join(dir, "devices.yaml"), []byte(registry), 0o644)
	for name, doc := range policies {
		WriteFile(t, filepath.Join(dir, "policies", name+".json"), []byte(doc), 0o644)
	}
}
