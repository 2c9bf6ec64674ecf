package mosqimport_test

import (
	"fmt"

	"github.com/edgegw/edgegw/gateway/mosqimport"
)

// Translate shows how ACL lines become policy statements; Import does the
// same from files, and WriteDir writes the result.
func ExampleTranslate() {
	conf, _ := mosqimport.ParseConf("mosquitto.conf", []byte("listener 1883 127.0.0.1\nacl_file acl\n"))
	acl := []byte("pattern write sensors/%c/#\n" +
		"user dashboard\n" +
		"topic read sensors/+/temp\n")
	res := mosqimport.Translate("mosquitto.conf", conf, func(string) (*mosqimport.ACL, []mosqimport.Finding, error) {
		a, errs := mosqimport.ParseACL("acl", acl)
		return a, errs, nil
	}, mosqimport.Options{Site: "plant-7"})
	for _, p := range res.Policies {
		for _, s := range p.Statements {
			fmt.Println(p.Name, s.Effect, s.Action, s.Resource)
		}
	}
	for _, th := range res.Registry.Things {
		fmt.Println("thing", th.Name, th.Policies)
	}
	for _, g := range res.Registry.Groups {
		fmt.Println("group", g.Name, g.Match, g.Policies)
	}
	// Output:
	// mosquitto-base Allow [iot:Connect] [client/${iot:Connection.Thing.ThingName}]
	// mosquitto-base Allow [iot:Subscribe] [topicfilter/*]
	// acl-patterns Allow [iot:Publish iot:RetainPublish] [topic/sensors/${iot:ClientId} topic/sensors/${iot:ClientId}/*]
	// acl-user-dashboard Allow [iot:Receive] [topic/sensors/*/temp]
	// acl-user-dashboard Deny [iot:Receive] [topic/sensors/*/*/temp]
	// thing dashboard [acl-user-dashboard]
	// group all-clients * [mosquitto-base acl-patterns]
}
