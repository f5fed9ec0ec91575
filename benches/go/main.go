// The Go side of the dump comparison in BENCHMARKS.md: faas-provider's log handler over
// a requester that answers every query with the same generated messages as the serve
// bench's `generated` server (1,000,000 by default, or the first argument). It prints
// `listening ADDR` and serves on 127.0.0.1 until killed. build.sh puts it beside a copy
// of faas-provider's logs and httputil packages and builds it.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/logs"
)

type generated struct{ n int }

func (g generated) Query(ctx context.Context, _ logs.Request) (<-chan logs.Message, error) {
	out := make(chan logs.Message, 1024)
	start := time.Now().Add(-time.Hour).UTC()
	text := strings.Repeat("GET /function/bench 200 OK - ", 3)
	go func() {
		defer close(out)
		for i := 0; i < g.n; i++ {
			m := logs.Message{
				Name:      "bench",
				Namespace: "openfaas-fn",
				Instance:  "bench-7d9f8c6b5-x2vqz",
				Timestamp: start.Add(time.Duration(i) * time.Microsecond),
				Text:      text,
			}
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening %s\n", listener.Addr())
	handler := logs.NewLogHandlerFunc(generated{n}, 600*time.Second)
	http.Serve(listener, http.HandlerFunc(handler))
}
