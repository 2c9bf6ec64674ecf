package shadow_test

import (
	"context"
	"fmt"
	"time"

	"github.com/edgegw/edgegw/gateway/shadow"
)

// The broker passes every PUBLISH to a shadow request topic to Handle, after
// authorizing it, and publishes the responses on the local broker.
func ExampleService_Handle() {
	svc := shadow.New(shadow.NewMemStore(), shadow.Options{})
	at := time.Unix(1591141596, 0)
	req := shadow.Request{
		Topic:   "$aws/things/lamp/shadow/update",
		Payload: []byte(`{"state":{"desired":{"color":"RED"}},"clientToken":"app-1"}`),
		Time:    at,
	}
	if thing, name, op, ok := shadow.Match(req.Topic); ok {
		fmt.Printf("authorize %+v (thing %s, shadow %q)\n", shadow.PermissionFor(op, thing, name), thing, name)
	}
	for _, r := range svc.Handle(context.Background(), req) {
		fmt.Println(r.Topic, string(r.Payload))
	}
	// Output:
	// authorize {Action:iot:UpdateThingShadow Resource:thing/lamp} (thing lamp, shadow "")
	// $aws/things/lamp/shadow/update/accepted {"clientToken":"app-1","metadata":{"desired":{"color":{"timestamp":1591141596}}},"state":{"desired":{"color":"RED"}},"timestamp":1591141596,"version":1}
	// $aws/things/lamp/shadow/update/delta {"clientToken":"app-1","metadata":{"color":{"timestamp":1591141596}},"state":{"color":"RED"},"timestamp":1591141596,"version":1}
	// $aws/things/lamp/shadow/update/documents {"clientToken":"app-1","current":{"metadata":{"desired":{"color":{"timestamp":1591141596}}},"state":{"desired":{"color":"RED"}},"version":1},"timestamp":1591141596}
}
