package build

import (
	"strconv"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
)

// defaultFarmJobs is what a build farm host without /jobs is counted for:
// distcc's own default limit per remote host.
const defaultFarmJobs = 4

// FarmHost splits a build farm entry, host[:port][/jobs]; port is "" and
// jobs 0 when not given.
func FarmHost(entry string) (host, port string, jobs int) {
	host = entry
	if i := strings.LastIndexByte(host, '/'); i >= 0 {
		jobs, _ = strconv.Atoi(host[i+1:])
		host = host[:i]
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host, port = host[:i], host[i+1:]
	}
	return host, port, jobs
}

// FarmJobs is the make -j for a build on a farm: the local CPUs plus each
// host's /jobs (defaultFarmJobs when it gives none). A localhost entry is
// the local machine, already counted.
func FarmJobs(f cluster.BuildFarm, localCPUs int) int {
	n := localCPUs
	for _, h := range f.Hosts {
		host, _, jobs := FarmHost(h)
		if host == "localhost" || host == "127.0.0.1" {
			continue
		}
		if jobs <= 0 {
			jobs = defaultFarmJobs
		}
		n += jobs
	}
	return n
}

// FarmEnv is the environment that points the farm's engine at its hosts.
// distcc takes the entries as they are (host[:port][/limit] is its own
// syntax). icecc takes only the scheduler's host name: the first entry,
// without :port or /jobs, which icecc would read as part of the name.
func FarmEnv(f cluster.BuildFarm) []string {
	switch f.Engine {
	case "distcc":
		return []string{"DISTCC_HOSTS=" + strings.Join(f.Hosts, " ")}
	case "icecc":
		if len(f.Hosts) > 0 {
			host, _, _ := FarmHost(f.Hosts[0])
			return []string{"ICECC_SCHEDULER_HOST=" + host}
		}
	}
	return nil
}
