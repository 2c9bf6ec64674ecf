package broker

import (
	"context"
	"os"
	"testing"
	"time"

	pahopackets "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// TestConnectConditionKeys: the CONNECT's will topic and the TLS facts reach
// the policy engine, so AWS's connect-policy examples with iot:LastWillTopic
// and aws:SecureTransport decide as in AWS IoT Core.
func TestConnectConditionKeys(t *testing.T) {
	e := newEnv(t, withThing("wisp", `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/${iot:ClientId}",
  "Condition": {"StringLike": {"iot:LastWillTopic": "arn:aws:iot:us-east-1:123456789012:topic/will/${iot:ClientId}"}, "Bool": {"aws:SecureTransport": "true"}}},
 {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/will/${iot:ClientId}"}]}`))
	tests := []struct {
		name string
		will string // "" = no will
		want byte
	}{
		{"will on the allowed topic", "will/wisp", 0},
		{"will elsewhere", "will/other", 0x87},
		{"no will: the key is absent", "", 0x87},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := e.dialThing(t, "wisp")
			cl := paho.NewClient(paho.ClientConfig{Conn: pahopackets.NewThreadSafeConn(conn), OnClientError: func(error) {}})
			cp := &paho.Connect{ClientID: "wisp", KeepAlive: 30, CleanStart: true}
			if tc.will != "" {
				cp.WillMessage = &paho.WillMessage{Topic: tc.will, Payload: []byte("gone")}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ack, err := cl.Connect(ctx, cp)
			if ack == nil {
				t.Fatalf("connect: no CONNACK: %v", err)
			}
			if ack.ReasonCode != tc.want {
				t.Errorf("CONNACK 0x%02x; want 0x%02x (audit: %s)", ack.ReasonCode, tc.want, readAudit(t, e.audit))
			}
			if err == nil {
				_ = cl.Disconnect(&paho.Disconnect{})
			}
		})
	}
}

func readAudit(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
