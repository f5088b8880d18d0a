package store

import "bulwark/internal/apperr"

// ValidOrgID reports whether id is an org id in canonical form: a
// lower-case UUID, 8-4-4-4-12 hex digits. Only such ids reach file names and
// database names.
func ValidOrgID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

func checkOrgID(id string) error {
	if !ValidOrgID(id) {
		return apperr.Errorf(apperr.Invalid, "invalid org id")
	}
	return nil
}
