package enrol

import (
	"fmt"
	"testing"

	"github.com/edgegw/edgegw/gateway/authz"
)

// The claim policy, loaded by the policy engine the broker uses, allows exactly the
// provisioning requests and their responses; the renew policy adds the same to a device.
func TestClaimAndRenewPolicies(t *testing.T) {
	s := newSite(t, Config{})
	reg := fmt.Sprintf(`version: 1
things:
  - {name: claim1, type: claim, policies: [%s]}
  - {name: sensor-0001, policies: [own, %s]}
`, ClaimPolicyName, RenewPolicyName)
	own := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"}]}`
	e, err := authz.Load(authz.Source{Name: "devices.yaml", Data: []byte(reg)}, []authz.Source{
		{Name: ClaimPolicyName + ".json", Data: ClaimPolicy("sensors")},
		{Name: RenewPolicyName + ".json", Data: RenewPolicy("sensors")},
		{Name: "own.json", Data: []byte(own)},
	})
	if err != nil {
		t.Fatalf("loading the policies: %v", err)
	}
	if n := e.Notes(); len(n) > 0 {
		t.Errorf("policy notes: %v", n)
	}
	claim, err := e.Bind(authz.Identity{ClientID: "claim1-0042", ThingName: "claim1", Cert: s.claim.Cert, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := e.Bind(authz.Identity{ClientID: "sensor-0001", ThingName: "sensor-0001", TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	prov := ProvisionTopic("sensors")
	for _, tc := range []struct {
		who    string
		s      *authz.Session
		action authz.Action
		name   string
		want   bool
	}{
		{"claim", claim, authz.Connect, "claim1-0042", true},
		{"claim", claim, authz.Connect, "claim1", true},
		{"claim", claim, authz.Connect, "sensor-0001", false}, // a leaked claim cannot take a sensor's session
		{"claim", claim, authz.Connect, "claim10", false},
		{"claim", claim, authz.Publish, TopicCreateFromCSR, true},
		{"claim", claim, authz.Publish, prov, true},
		{"claim", claim, authz.Publish, ProvisionTopic("other"), false},
		{"claim", claim, authz.Publish, TopicCreateFromCSR + SuffixAccepted, false}, // no forged answers
		{"claim", claim, authz.Publish, TopicCreateKeys, false},
		{"claim", claim, authz.Publish, CBOR(TopicCreateFromCSR), true},
		{"claim", claim, authz.Publish, CBOR(TopicCreateKeys), false},
		{"claim", claim, authz.Receive, CBOR(prov) + SuffixAccepted, true},
		{"claim", claim, authz.Publish, "sensors/temp", false},
		{"claim", claim, authz.Subscribe, TopicCreateFromCSR + SuffixAccepted, true},
		{"claim", claim, authz.Subscribe, prov + SuffixRejected, true},
		{"claim", claim, authz.Subscribe, "$aws/certificates/create-from-csr/json/+", true}, // Receive still decides
		{"claim", claim, authz.Subscribe, "$aws/certificates/create-from-csr/#", false},
		{"claim", claim, authz.Receive, TopicCreateFromCSR + "/other", false},
		{"claim", claim, authz.Subscribe, "#", false},
		{"claim", claim, authz.Receive, TopicCreateFromCSR + SuffixAccepted, true},
		{"claim", claim, authz.Receive, prov + SuffixAccepted, true},
		{"claim", claim, authz.Receive, "sensors/temp", false},
		{"device", dev, authz.Connect, "sensor-0001", true},
		{"device", dev, authz.Publish, TopicCreateFromCSR, true},
		{"device", dev, authz.Publish, TopicCreateFromCSR + SuffixAccepted, false},
		{"device", dev, authz.Subscribe, TopicCreateFromCSR + SuffixAccepted, true},
		{"device", dev, authz.Receive, prov + SuffixAccepted, true},
	} {
		if got := tc.s.Allowed(tc.action, tc.name); got != tc.want {
			t.Errorf("%s %s %s = %v; want %v", tc.who, tc.action, tc.name, got, tc.want)
		}
	}
}
