package testredis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-stepup/caddy-stepup/internal/freeport"
)

// Cluster is a local Redis Cluster.
type Cluster struct {
	// Nodes are every node, masters and replicas.
	Nodes []*Server
	// ReplicasOf lists the replicas of each master, by the master's
	// port (RunClusterReplicas only).
	ReplicasOf map[int][]*Server
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.Addr())
	}
	return a
}

// startNode starts a cluster node in a directory under dir, on a port
// p whose cluster bus port p+10000 was free too, and stops it when the
// test ends.
func startNode(tb testing.TB, dir string, extra []string) (*Server, error) {
	var s *Server
	err := freeport.Retry(1, func(ports []int) error {
		p := ports[0]
		if p+10000 > 65535 {
			return errors.New("address already in use: no room for the cluster bus port")
		}
		bus, err := freeport.HoldPort(p + 10000)
		if err != nil {
			return fmt.Errorf("cluster bus port: address already in use (%v)", err)
		}
		bus.Release()
		nodeDir := filepath.Join(dir, strconv.Itoa(p))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			return err
		}
		s = &Server{Port: p, Dir: nodeDir, extra: extra}
		return s.start()
	})
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { s.Stop(); s.Release() })
	return s, nil
}

// RunCluster starts masters cluster-enabled redis-servers, joins them
// with redis-cli --cluster create, waits until the cluster is ok, and
// stops them when the test ends.
func RunCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	return RunClusterReplicas(tb, masters, 0)
}

// RunClusterReplicas is RunCluster with replicas replicas per master;
// it also waits until every replica is in sync with its master.
func RunClusterReplicas(tb testing.TB, masters, replicas int) *Cluster {
	tb.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Fatalf("redis-cli not found (Debian's redis-tools, installed with redis-server): %v", err)
	}
	dir := tb.TempDir()
	c := &Cluster{}
	for i := 0; i < masters*(1+replicas); i++ {
		s, err := startNode(tb, dir, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
			"--repl-diskless-sync-delay", "0",
		})
		if err != nil {
			tb.Fatalf("starting cluster node: %v", err)
		}
		c.Nodes = append(c.Nodes, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, n := range c.Nodes {
			out, _ := exec.Command(cli, "-p", strconv.Itoa(n.Port), "cluster", "info").Output()
			if !strings.Contains(string(out), "cluster_state:ok") {
				ok = false
			}
		}
		if ok && replicas > 0 {
			ok = c.replicasInSync(masters * replicas)
		}
		if ok {
			return c
		}
		if time.Now().After(deadline) {
			tb.Fatal("the cluster did not reach cluster_state:ok (with replicas in sync) within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// replicasInSync fills c.ReplicasOf and reports whether want replicas
// have their link to their master up.
func (c *Cluster) replicasInSync(want int) bool {
	of := make(map[int][]*Server)
	n := 0
	for _, s := range c.Nodes {
		info, _ := s.Info(context.Background(), "replication")
		if !strings.Contains(info, "role:slave") {
			continue
		}
		if !strings.Contains(info, "master_link_status:up") {
			return false
		}
		for _, line := range strings.Split(info, "\n") {
			if p, ok := strings.CutPrefix(strings.TrimSpace(line), "master_port:"); ok {
				port, _ := strconv.Atoi(p)
				of[port] = append(of[port], s)
				n++
			}
		}
	}
	c.ReplicasOf = of
	return n == want
}

// RunReplicated starts a master and one replica of it, waits until the
// replica is in sync, and stops both when the test ends.
func RunReplicated(tb testing.TB) (master, replica *Server) {
	tb.Helper()
	// No diskless-sync delay (5s by default): the replica syncs at once.
	master = Run(tb, "--repl-diskless-sync-delay", "0")
	replica = Run(tb, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := replica.Info(context.Background(), "replication")
		if strings.Contains(info, "master_link_status:up") {
			return master, replica
		}
		if time.Now().After(deadline) {
			tb.Fatalf("replica not in sync within 20s (%q)", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Sentinel is a master, one replica and one Sentinel watching them under
// the name MasterName.
type Sentinel struct {
	Master, Replica, Sentinel *Server
	MasterName                string
}

// RunSentinel starts a master, a replica of it and a Sentinel with a
// quick failover (down after 1s), and stops them when the test ends.
func RunSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	dir := tb.TempDir()
	start := func(name string, extra ...string) *Server {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		var s *Server
		err := freeport.Retry(1, func(ports []int) error {
			s = &Server{Port: ports[0], Dir: d, extra: extra}
			return s.start()
		})
		if err != nil {
			tb.Fatalf("starting %s: %v", name, err)
		}
		tb.Cleanup(func() { s.Stop(); s.Release() })
		return s
	}
	st := &Sentinel{MasterName: "stepup-master"}
	st.Master = start("master")
	st.Replica = start("replica", "--replicaof", "127.0.0.1", strconv.Itoa(st.Master.Port))

	sdir := filepath.Join(dir, "sentinel")
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		tb.Fatal(err)
	}
	conf := filepath.Join(sdir, "sentinel.conf")
	err := freeport.Retry(1, func(ports []int) error {
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds %s 2000\n"+
			"sentinel failover-timeout %s 5000\n"+
			"sentinel parallel-syncs %s 1\n",
			ports[0], sdir, st.MasterName, st.Master.Port, st.MasterName, st.MasterName, st.MasterName)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			return err
		}
		// A Sentinel is redis-server in sentinel mode; its config file
		// must come first on the command line.
		st.Sentinel = &Server{Port: ports[0], Dir: sdir, confFirst: conf, extra: []string{"--sentinel"}}
		return st.Sentinel.start()
	})
	if err != nil {
		tb.Fatalf("starting sentinel: %v", err)
	}
	tb.Cleanup(func() { st.Sentinel.Stop(); st.Sentinel.Release() })

	// Wait until the replica is in sync and the Sentinel knows it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := st.Replica.Info(context.Background(), "replication")
		known, _ := st.Sentinel.Raw(context.Background(), "SENTINEL", "REPLICAS", st.MasterName)
		if strings.Contains(info, "master_link_status:up") && strings.Contains(known, strconv.Itoa(st.Replica.Port)) {
			return st
		}
		if time.Now().After(deadline) {
			tb.Fatalf("sentinel setup not ready within 20s (replica: %q)", info)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
