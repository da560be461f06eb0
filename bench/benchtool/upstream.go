package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// upstreamBody is what the upstream answers: about the size of a short
// Pbench API listing.
var upstreamBody = []byte(`{"datasets":[{"name":"fio_rhel9_2026.11.26T04.07.00","owner":"user","access":"private","size":1048576}],"total":1}` + "\n")

func upstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var accepted atomic.Int64
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute, // longer than the gateways' idle timeouts
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				accepted.Add(1)
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/_bench/conns" {
				fmt.Fprintln(w, accepted.Load())
				return
			}
			w.Header()["Content-Type"] = []string{"application/json"}
			_, _ = w.Write(upstreamBody)
		}),
	}
	fmt.Fprintf(os.Stderr, "listening on http://%s\n", ln.Addr())
	return srv.Serve(ln)
}

// conns counts the ESTABLISHED TCP connections of process pid whose remote
// port is port; with -listening, it prints the port that pid listens on
// instead (for a server that does not say which port :0 gave it).
func conns(args []string) error {
	fs := flag.NewFlagSet("conns", flag.ContinueOnError)
	pid := fs.Int("pid", 0, "process")
	port := fs.Int("port", 0, "remote port")
	listening := fs.Bool("listening", false, "print the port pid listens on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pid <= 0 || (*port <= 0 && !*listening) {
		return errors.New("conns needs -pid and -port or -listening")
	}
	proc := fmt.Sprintf("/proc/%d", *pid)
	if *listening {
		p, err := listeningPort(proc)
		if err != nil {
			return err
		}
		fmt.Println(p)
		return nil
	}
	n, err := countConns(proc, *port)
	if err != nil {
		return err
	}
	fmt.Println(n)
	return nil
}

// tcpSocket is a line of /proc/PID/net/tcp{,6} of one of the process' sockets.
type tcpSocket struct {
	state       string // "01" ESTABLISHED, "0A" LISTEN
	local, peer int    // ports
}

// sockets lists the TCP sockets that process proc (/proc/PID) holds.
func sockets(proc string) ([]tcpSocket, error) {
	fds, err := os.ReadDir(filepath.Join(proc, "fd"))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join(proc, "fd", fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	port := func(addr string) int {
		_, hex, _ := strings.Cut(addr, ":")
		p, _ := strconv.ParseUint(hex, 16, 16)
		return int(p)
	}
	var socks []tcpSocket
	for _, table := range []string{"net/tcp", "net/tcp6"} {
		f, err := os.Open(filepath.Join(proc, table)) // #nosec G304 -- /proc/PID/net/tcp{,6}
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) >= 10 && inodes[fields[9]] {
				socks = append(socks, tcpSocket{state: fields[3], local: port(fields[1]), peer: port(fields[2])})
			}
		}
		_ = f.Close()
	}
	return socks, nil
}

func countConns(proc string, port int) (int, error) {
	socks, err := sockets(proc)
	n := 0
	for _, s := range socks {
		if s.state == "01" && s.peer == port {
			n++
		}
	}
	return n, err
}

func listeningPort(proc string) (int, error) {
	socks, err := sockets(proc)
	if err != nil {
		return 0, err
	}
	for _, s := range socks {
		if s.state == "0A" {
			return s.local, nil
		}
	}
	return 0, errors.New("the process listens on no TCP port")
}
