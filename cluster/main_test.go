package cluster

import (
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// Git keeps no file mode but the executable bit, so a checkout leaves
	// the fixture secrets as the umask says. authkey must be private, as a
	// user's would be (see readSecretFile); authkey-open must not.
	for file, mode := range map[string]os.FileMode{"testdata/authkey": 0o600, "testdata/authkey-open": 0o644, "testdata/authkey-group": 0o640} {
		if err := os.Chmod(file, mode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
