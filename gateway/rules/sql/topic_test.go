package sql

import "testing"

func TestTopicFilterMatch(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/#", "a", true}, // [MQTT-4.7.1-2]: # matches the parent level too
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"+/x", "$aws/x", false},
		{"$aws/things/+/shadow/update", "$aws/things/t1/shadow/update", true},
		{"+/+/temp", "building/b1/temp", true},
		{"+/+/temp", "building/b1/hum", false},
	}
	for _, tc := range cases {
		f, err := parseTopicFilter(tc.filter)
		if err != nil {
			t.Fatalf("parseTopicFilter(%q): %v", tc.filter, err)
		}
		if got := f.match(tc.topic); got != tc.want {
			t.Errorf("%q matches %q = %v; want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}
