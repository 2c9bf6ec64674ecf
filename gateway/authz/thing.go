package authz

// MaxThingName is the longest thing name AWS IoT Core accepts.
const MaxThingName = 128

// ValidThingName reports whether s can be a thing name: 1 to MaxThingName
// characters from a-z A-Z 0-9 : _ - (AWS IoT Core's rule). It is the one
// owner of the rule: the registry, the broker's identity (certificate CN/SAN
// or client ID) and the PKI (issuing certificates) all ask it.
func ValidThingName(s string) bool {
	if s == "" || len(s) > MaxThingName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
