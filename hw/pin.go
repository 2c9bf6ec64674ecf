package hw

import (
	"errors"
	"fmt"
	"strings"
)

// readPIN reads the user PIN from a pin-source file: mode 0600 or stricter, one line, not
// empty. A trailing newline is dropped. An unreadable or empty file is an error, never an empty PIN.
func readPIN(u *PKCS11URI) (string, error) {
	if u.PINSource == "" {
		return "", fmt.Errorf("%w: no pin-source: add ?pin-source=/etc/edgegw/pin (a 0600 file holding the user PIN)", ErrPIN)
	}
	data, err := readPrivateFile(u.PINSource)
	if errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("%w: pin-source %s does not exist", ErrPIN, u.PINSource)
	}
	if err != nil {
		return "", fmt.Errorf("%w: reading pin-source: %w", ErrPIN, err)
	}
	pin := strings.TrimRight(string(data), "\r\n")
	if pin == "" {
		return "", fmt.Errorf("%w: pin-source %s is empty", ErrPIN, u.PINSource)
	}
	if strings.ContainsAny(pin, "\r\n") {
		return "", fmt.Errorf("%w: pin-source %s has more than one line", ErrPIN, u.PINSource)
	}
	return pin, nil
}
