// Package traces sets OpenTelemetry up for the interop programs as a go-micro v5 program
// would: an OTLP/HTTP exporter (configured by OTEL_EXPORTER_OTLP_ENDPOINT), a batching tracer
// provider naming the process's service, and W3C trace context as the global propagator,
// which go-micro's opentelemetry wrappers read and write.
package traces

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Start returns the process's tracer provider, also set as the global one; shut it down to
// flush the spans.
func Start(ctx context.Context, service string) (*sdktrace.TracerProvider, error) {
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
	)
	otel.SetTracerProvider(tp)
	// go-micro's wrappers propagate through the global propagator, a no-op unless set.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp, nil
}
