// A throwaway OTLP/HTTP receiver: prints every span it is sent.
package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func main() {
	http.HandleFunc("/v1/traces", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req collectorpb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fmt.Printf("# export request: %d bytes, %s\n", len(b), r.Header.Get("Content-Type"))
		for _, rs := range req.ResourceSpans {
			svc := ""
			for _, kv := range rs.Resource.Attributes {
				if kv.Key == "service.name" {
					svc = kv.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					attrs := ""
					for _, kv := range s.Attributes {
						attrs += fmt.Sprintf(" %s=%v", kv.Key, kv.Value.String())
					}
					fmt.Printf("%s trace=%s span=%s parent=%s %s %q%s\n", svc, hex.EncodeToString(s.TraceId)[:8],
						hex.EncodeToString(s.SpanId)[:8], hex.EncodeToString(s.ParentSpanId), s.Kind, s.Name, attrs)
				}
			}
		}
		out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})
	fmt.Fprintln(os.Stderr, http.ListenAndServe(os.Args[1], nil))
}
