package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"
)

// cluster is a throwaway PostgreSQL cluster.
type cluster struct {
	mu          sync.Mutex
	mainRunning bool // Main will stop the cluster at exit
	started     bool
	err         error // a failed start is not retried
	dir         string
	bin         string
	url         string
	asPostgres  bool
}

// clusterState is the throwaway cluster of this test binary.
var clusterState cluster

// startCluster starts the throwaway cluster once and returns its URL.
func startCluster() (string, error) {
	c := &clusterState
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.err != nil {
		return c.url, c.err
	}
	if !c.mainRunning {
		// Without Main nobody would stop the cluster at exit.
		return "", errors.New("a throwaway PostgreSQL cluster needs TestMain to call storetest.Main(m) (or set " + EnvPostgres + ")")
	}
	c.err = c.start()
	c.started = c.err == nil
	return c.url, c.err
}

func (c *cluster) start() error {
	bin, err := findBin()
	if err != nil {
		return err
	}
	c.bin = bin
	c.asPostgres = os.Geteuid() == 0
	dir, err := os.MkdirTemp("", "bulwark-pg-")
	if err != nil {
		return fmt.Errorf("postgres cluster: %w", err)
	}
	c.dir = dir
	if c.asPostgres {
		if err := chownToPostgres(dir); err != nil {
			os.RemoveAll(dir)
			return err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("postgres cluster: initdb: %v: %s", err, out)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("postgres cluster: %w", err)
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300", port, dir)
		out, err := c.run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start").CombinedOutput()
		if err == nil {
			c.url = "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/postgres?sslmode=disable"
			return waitReady(c.url)
		}
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		lastErr = fmt.Errorf("postgres cluster: pg_ctl start: %v: %s %s", err, out, log)
	}
	os.RemoveAll(dir)
	return lastErr
}

// stopCluster stops the cluster, if it was started, and removes its files.
func stopCluster() error {
	c := &clusterState
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		return nil
	}
	c.started = false
	out, err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop").CombinedOutput()
	if rerr := os.RemoveAll(c.dir); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("postgres cluster: stop: %v: %s", err, out)
	}
	return nil
}

func (c *cluster) run(tool string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, tool)
	if c.asPostgres {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// findBin returns the newest /usr/lib/postgresql/*/bin holding initdb.
func findBin() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", errors.New("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin: install postgresql, set " +
			EnvPostgres + " to a server URL, or set " + EnvPostgres + "=skip")
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

func chownToPostgres(dir string) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("postgres cluster: running as root needs a postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("postgres cluster: %w", err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(url string) error {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		err := db.PingContext(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres cluster: not ready: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
