package authz

import (
	"fmt"
	"strings"
	"testing"
)

// The seed worked example: building hq, 20 floors x 100 devices, four roles.
// On each floor devices 001-025 are temperature sensors, 026-050 occupancy sensors,
// 051-075 lights and 076-100 locks. Things are listed with type and attributes; groups
// attach the role policies by type, and a baseline policy to everyone by name.

const (
	floors         = 20
	devicesOnFloor = 100
)

var roles = []struct{ typ, prefix string }{
	{"temperature", "temp"}, {"occupancy", "occ"}, {"light", "light"}, {"lock", "lock"},
}

func deviceName(floor, id int) (name, typ string) {
	r := roles[(id-1)/25]
	return fmt.Sprintf("%s-f%02d-%03d", r.prefix, floor, id), r.typ
}

func buildingRegistry() Source {
	var b strings.Builder
	b.WriteString("version: 1\n# the building: 20 floors x 100 devices\nthings:\n")
	for f := 1; f <= floors; f++ {
		for id := 1; id <= devicesOnFloor; id++ {
			name, typ := deviceName(f, id)
			fmt.Fprintf(&b, "  - name: %s\n    type: %s\n    attributes: {building: hq, floor: \"%02d\"}\n", name, typ, f)
		}
	}
	b.WriteString(`groups:
  - name: temperature-sensors
    match: {type: temperature}
    policies: [temperature]
  - name: occupancy-sensors
    match: {type: occupancy}
    policies: [occupancy]
  - name: lights
    match: {type: light}
    policies: [light]
  - name: locks
    match: {type: lock}
    policies: [lock]
  - name: everyone
    match: {name: "*"}
    policies: [baseline]
`)
	return Source{Name: "devices.yaml", Data: []byte(b.String())}
}

// Topic prefix of a thing, from its attributes.
const own = "building/${iot:Connection.Thing.Attributes[building]}/floor/${iot:Connection.Thing.Attributes[floor]}"

func buildingPolicies() []Source {
	connect := `{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"}`
	return []Source{
		{Name: "policies/temperature.json", Data: []byte(`{
  "Version": "2012-10-17",
  "Statement": [
    ` + connect + `,
    {"Effect": "Allow", "Action": "iot:Publish",
     "Resource": "arn:aws:iot:*:*:topic/` + own + `/temp/${iot:Connection.Thing.ThingName}"}
  ]
}`)},
		{Name: "policies/occupancy.yaml", Data: []byte(`Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: iot:Connect
    Resource: "client/${iot:Connection.Thing.ThingName}"
  - Effect: Allow
    Action: iot:Publish
    Resource: "topic/` + own + `/occupancy/${iot:Connection.Thing.ThingName}"
  - Effect: Allow
    Action: iot:Subscribe
    Resource: "topicfilter/` + own + `/occupancy/${iot:Connection.Thing.ThingName}/shadow"
  - Effect: Allow
    Action: [iot:Receive]
    Resource: ["topic/` + own + `/occupancy/${iot:Connection.Thing.ThingName}/shadow"]
`)},
		{Name: "policies/light.json", Data: []byte(`{
  "Version": "2012-10-17",
  "Statement": [
    ` + connect + `,
    {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/` + own + `/light/${iot:Connection.Thing.ThingName}/*"},
    {"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": "topicfilter/` + own + `/light/${iot:Connection.Thing.ThingName}/cmd"},
    {"Effect": "Allow", "Action": ["iot:Receive"], "Resource": "topic/` + own + `/light/${iot:Connection.Thing.ThingName}/cmd"}
  ]
}`)},
		{Name: "policies/lock.json", Data: []byte(`{
  "Version": "2012-10-17",
  "Statement": [
    ` + connect + `,
    {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/` + own + `/lock/${iot:Connection.Thing.ThingName}/audit"},
    {"Effect": "Allow", "Action": ["iot:Subscribe", "iot:Receive"],
     "Resource": ["topicfilter/` + own + `/lock/${iot:Connection.Thing.ThingName}/cmd",
                  "topic/` + own + `/lock/${iot:Connection.Thing.ThingName}/cmd"]}
  ]
}`)},
		// Devices never publish commands, whatever a role policy allows.
		{Name: "policies/baseline.json", Data: []byte(`{
  "Version": "2012-10-17",
  "Statement": {"Sid": "NoCommandsFromDevices", "Effect": "Deny",
                "Action": ["iot:Publish", "iot:RetainPublish"], "Resource": "topic/building/*/cmd"}
}`)},
	}
}

func loadBuilding(t testing.TB) *Engine {
	t.Helper()
	e, err := Load(buildingRegistry(), buildingPolicies())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e
}

func bind(t testing.TB, e *Engine, thing, clientID string) *Session {
	t.Helper()
	s, err := e.Bind(Identity{ThingName: thing, ClientID: clientID})
	if err != nil {
		t.Fatalf("Bind(%s): %v", thing, err)
	}
	return s
}

type check struct {
	action Action
	res    string
	want   bool
}

func runChecks(t *testing.T, s *Session, checks []check) {
	t.Helper()
	for _, c := range checks {
		if got := s.Allowed(c.action, c.res); got != c.want {
			t.Errorf("%s %s %q = %v; want %v\n%s", s.id.ThingName, c.action, c.res, got, c.want, s.Explain(c.action, c.res))
		}
		if ex := s.Explain(c.action, c.res); ex.Allowed != c.want {
			t.Errorf("Explain(%s %q).Allowed = %v; want %v", c.action, c.res, ex.Allowed, c.want)
		}
	}
}

func TestBuilding(t *testing.T) {
	e := loadBuilding(t)
	if n := len(e.names); n != floors*devicesOnFloor {
		t.Fatalf("things = %d; want %d", n, floors*devicesOnFloor)
	}
	tests := []struct {
		name   string
		thing  string
		checks []check
	}{
		{"temperature", "temp-f01-001", []check{
			{Connect, "temp-f01-001", true},
			{Connect, "temp-f01-002", false}, // client ID pinned to the thing name
			{Publish, "building/hq/floor/01/temp/temp-f01-001", true},
			{Publish, "building/hq/floor/01/temp/temp-f01-002", false}, // neighbour's topic
			{Publish, "building/hq/floor/02/temp/temp-f01-001", false}, // another floor
			{Publish, "building/hq/floor/01/temp/temp-f01-001/x", false},
			{Publish, "building/hq/floor/01/temp/temp-f01-00", false},
			{Subscribe, "building/hq/floor/01/temp/temp-f01-001", false}, // cannot subscribe
			{Subscribe, "#", false},
			{Receive, "building/hq/floor/01/temp/temp-f01-001", false},
			{RetainPublish, "building/hq/floor/01/temp/temp-f01-001", false},
		}},
		{"temperature on floor 20", "temp-f20-025", []check{
			{Publish, "building/hq/floor/20/temp/temp-f20-025", true},
			{Publish, "building/hq/floor/01/temp/temp-f20-025", false},
			{Publish, "building/hq/floor/20/temp/temp-f20-024", false},
		}},
		{"occupancy", "occ-f07-026", []check{
			{Connect, "occ-f07-026", true},
			{Publish, "building/hq/floor/07/occupancy/occ-f07-026", true},
			{Publish, "building/hq/floor/07/occupancy/occ-f07-027", false},
			{Subscribe, "building/hq/floor/07/occupancy/occ-f07-026/shadow", true},
			{Receive, "building/hq/floor/07/occupancy/occ-f07-026/shadow", true},
			{Subscribe, "building/hq/floor/07/occupancy/+/shadow", false},
			{Receive, "building/hq/floor/07/occupancy/occ-f07-027/shadow", false},
			{Publish, "building/hq/floor/07/occupancy/occ-f07-026/shadow", false},
		}},
		{"light", "light-f12-060", []check{
			{Publish, "building/hq/floor/12/light/light-f12-060/status", true},
			{Subscribe, "building/hq/floor/12/light/light-f12-060/cmd", true},
			{Receive, "building/hq/floor/12/light/light-f12-060/cmd", true},
			{Subscribe, "building/hq/floor/12/light/+/cmd", false},
			{Receive, "building/hq/floor/12/light/light-f12-061/cmd", false},
			{Publish, "building/hq/floor/12/light/light-f12-061/status", false},
			// Explicit Deny beats Allow: the light policy allows .../light-f12-060/*,
			// the baseline denies publishing any .../cmd.
			{Publish, "building/hq/floor/12/light/light-f12-060/cmd", false},
		}},
		{"lock", "lock-f03-100", []check{
			{Connect, "lock-f03-100", true},
			{Publish, "building/hq/floor/03/lock/lock-f03-100/audit", true},
			{Subscribe, "building/hq/floor/03/lock/lock-f03-100/cmd", true},
			{Receive, "building/hq/floor/03/lock/lock-f03-100/cmd", true},
			{Publish, "building/hq/floor/03/lock/lock-f03-100/cmd", false},
			// a lock cannot read other floors
			{Subscribe, "building/hq/floor/04/lock/lock-f03-100/cmd", false},
			{Receive, "building/hq/floor/04/lock/lock-f04-100/cmd", false},
			{Subscribe, "building/hq/floor/+/lock/lock-f03-100/cmd", false},
			{Subscribe, "building/#", false},
			{Receive, "building/hq/floor/04/temp/temp-f04-001", false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runChecks(t, bind(t, e, tt.thing, tt.thing), tt.checks)
		})
	}
}

// Every device of the building may publish its own role topic and nothing of its
// neighbour's or of the same device one floor up.
func TestBuildingEveryDevice(t *testing.T) {
	e := loadBuilding(t)
	for f := 1; f <= floors; f++ {
		for id := 1; id <= devicesOnFloor; id++ {
			name, _ := deviceName(f, id)
			s := bind(t, e, name, name)
			mine, other, up := ownTopic(f, id), ownTopic(f, id%devicesOnFloor+1), ownTopic(f%floors+1, id)
			up = strings.Replace(up, fmt.Sprintf("f%02d", f%floors+1), fmt.Sprintf("f%02d", f), 1)
			if !s.Allowed(Connect, name) || !s.Allowed(Publish, mine) || s.Allowed(Publish, other) || s.Allowed(Publish, up) {
				t.Fatalf("%s: connect %v, own %q %v, neighbour %q %v, other floor %q %v", name,
					s.Allowed(Connect, name), mine, s.Allowed(Publish, mine), other, s.Allowed(Publish, other), up, s.Allowed(Publish, up))
			}
		}
	}
}

func ownTopic(floor, id int) string {
	name, typ := deviceName(floor, id)
	switch typ {
	case "temperature":
		return fmt.Sprintf("building/hq/floor/%02d/temp/%s", floor, name)
	case "occupancy":
		return fmt.Sprintf("building/hq/floor/%02d/occupancy/%s", floor, name)
	case "light":
		return fmt.Sprintf("building/hq/floor/%02d/light/%s/status", floor, name)
	}
	return fmt.Sprintf("building/hq/floor/%02d/lock/%s/audit", floor, name)
}

func TestBuildingExplainDeny(t *testing.T) {
	e := loadBuilding(t)
	s := bind(t, e, "light-f12-060", "light-f12-060")
	ex := s.Explain(Publish, "building/hq/floor/12/light/light-f12-060/cmd")
	if ex.Allowed || ex.Decider == nil || ex.Decider.File != "policies/baseline.json" || ex.Decider.Index != 0 || ex.Decider.Effect != Deny {
		t.Fatalf("Explain = %+v; want DENY by policies/baseline.json Statement[0]", ex)
	}
	if len(ex.Matched) != 2 {
		t.Errorf("Matched = %v; want the Deny and the light Allow", ex.Matched)
	}
	out := ex.String()
	for _, want := range []string{
		"DENY iot:Publish topic/building/hq/floor/12/light/light-f12-060/cmd",
		`decided by: policies/baseline.json Statement[0] "NoCommandsFromDevices" (line 3, Deny) (an explicit Deny wins)`,
		`${iot:Connection.Thing.Attributes[floor]} = "12"`,
		`${iot:Connection.Thing.ThingName} = "light-f12-060"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Explain output lacks %q:\n%s", want, out)
		}
	}
	ex = s.Explain(Subscribe, "building/#")
	if ex.Allowed || ex.Decider != nil || !strings.Contains(ex.String(), "no statement allowed it") {
		t.Errorf("Explain(subscribe building/#) = %s", ex)
	}
}
