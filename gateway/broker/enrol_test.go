package broker

import "testing"

func TestFilterMatches(t *testing.T) {
	tests := []struct {
		name, filter, topic string
		want                bool
	}{
		{"exact", "$aws/certificates/create-from-csr/json/accepted", "$aws/certificates/create-from-csr/json/accepted", true},
		{"plus", "$aws/certificates/create-from-csr/json/+", "$aws/certificates/create-from-csr/json/rejected", true},
		{"hash", "$aws/certificates/#", "$aws/certificates/create-from-csr/json/accepted", true},
		{"hash matches parent", "a/#", "a", true},
		{"plus one level only", "$aws/certificates/+", "$aws/certificates/create-from-csr/json/accepted", false},
		{"other topic", "$aws/certificates/create-from-csr/json/accepted", "$aws/certificates/create-from-csr/json/rejected", false},
		{"leading wildcard never matches $", "#", "$aws/certificates/create-from-csr/json/accepted", false},
		{"leading plus never matches $", "+/certificates/create-from-csr/json/accepted", "$aws/certificates/create-from-csr/json/accepted", false},
		{"shared subscription", "$share/g/$aws/certificates/#", "$aws/certificates/create-from-csr/json/accepted", false},
		{"longer filter", "a/b/c", "a/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := filterMatches(tt.filter, tt.topic); got != tt.want {
				t.Errorf("filterMatches(%q, %q) = %v; want %v", tt.filter, tt.topic, got, tt.want)
			}
		})
	}
}
