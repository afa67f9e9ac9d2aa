// Package pgtemp runs a throwaway PostgreSQL cluster from the machine's own
// server binaries (initdb, pg_ctl), for tests, `make run` and the demo.
//
// PostgreSQL refuses to run as root, so when the process is root the server
// binaries run as the "postgres" user (Debian's packages create it).
package pgtemp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// InstallHint tells a person how to get the server binaries.
const InstallHint = "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql) or set the database URL to an existing server"

// Cluster is a running throwaway cluster.
type Cluster struct {
	Dir  string // data directory (and Unix socket directory)
	Port int
	bin  string
	cred *syscall.Credential
}

// FindBin returns the directory holding initdb and pg_ctl: PATH first, then
// the newest /usr/lib/postgresql/*/bin (Debian keeps them off PATH).
func FindBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("pgtemp: initdb and pg_ctl not found: %s", InstallHint)
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start creates and starts a cluster in a new temporary directory, listening
// on 127.0.0.1 on a free port, trusting local connections (it is throwaway
// and loopback-only), tuned for speed over durability.
func Start(ctx context.Context) (*Cluster, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtemp: running as root needs the postgres user to run the server: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}

	// Not t.TempDir: its parents are private to root, and the postgres user
	// must reach the data directory.
	dir, err := os.MkdirTemp("", "autopatch-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtemp: %w", err)
	}
	c.Dir = dir
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			c.remove()
			return nil, fmt.Errorf("pgtemp: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	if err := c.run(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		c.remove()
		return nil, err
	}
	if c.Port, err = freePort(); err != nil {
		c.remove()
		return nil, err
	}
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"+
		"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\nshared_buffers = 128MB\n",
		c.Port, dir)
	if err := appendFile(filepath.Join(data, "postgresql.conf"), conf); err != nil {
		c.remove()
		return nil, err
	}
	if err := c.StartServer(ctx); err != nil {
		c.remove()
		return nil, err
	}
	return c, nil
}

// URL returns a connection URL for database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// StartServer starts the (stopped) server and waits until it accepts
// connections.
func (c *Cluster) StartServer(ctx context.Context) error {
	data := filepath.Join(c.Dir, "data")
	if err := c.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(c.Dir, "log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "log"))
		return fmt.Errorf("%w\n%s", err, log)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("pgtemp: server did not accept connections: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StopServer stops the server, keeping its data, so it can be started again.
func (c *Cluster) StopServer(ctx context.Context) error {
	return c.run(ctx, "pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-w", "-m", "fast", "stop")
}

// Close stops the server and removes its directory.
func (c *Cluster) Close() error {
	err := c.run(context.Background(), "pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-w", "-m", "immediate", "stop")
	c.remove()
	return err
}

func (c *Cluster) remove() { _ = os.RemoveAll(c.Dir) }

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.Dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	// pg_ctl start leaves the server running with our pipes open; give it no
	// pipes so Wait returns when pg_ctl does.
	var out bytes.Buffer
	if name == "pg_ctl" {
		cmd.Stdout, cmd.Stderr = nil, nil
	} else {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgtemp: %s: %w: %s", name, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtemp: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgtemp: %w", err)
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}
