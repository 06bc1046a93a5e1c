package intake

import (
	"regexp"
	"testing"

	"github.com/payrail/payrail/internal/auth"
)

func withWebhooksAllowPrivate(c *Config) { c.WebhooksAllowPrivate = true }

func TestWebhookSubscriptionAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ops := h.tokenFor(h.org, auth.RoleServicing)
	h.do("PUT", "/organization/subscribe", ops, map[string]any{"webhook_url": "https://hooks.example.com/p"}).wantError(403, codeForbidden)
	h.do("GET", "/organization/subscribe", h.token, nil).wantError(404, codeNotFound)
	h.do("PUT", "/organization/subscribe/replay_failed_events", h.token, nil).wantError(404, codeNotFound)

	// Validation: https only, no private literals, no email notifications.
	h.do("PUT", "/organization/subscribe", h.token, map[string]any{
		"webhook_url": "http://127.0.0.1:9/x", "failure_notification_protocol": "email",
		"failure_notification_endpoint": "ops@example.com", "extra": 1,
	}).wantError(422, codeInvalidRequest, "/webhook_url", "/failure_notification_protocol", "/extra")
	h.do("PUT", "/organization/subscribe", h.token, map[string]any{"webhook_url": "https://169.254.169.254/latest"}).
		wantError(422, codeInvalidRequest, "/webhook_url")
	h.do("PUT", "/organization/subscribe", h.token, map[string]any{
		"webhook_url": "https://hooks.example.com/p", "failure_notification_protocol": "https",
	}).wantError(422, codeInvalidRequest, "/failure_notification_endpoint")
	h.do("PUT", "/organization/subscribe", h.token, map[string]any{}).wantError(422, codeInvalidRequest, "/webhook_url")

	secretRE := regexp.MustCompile(`^whsec_[A-Za-z0-9_-]{43}$`)
	res := h.do("PUT", "/organization/subscribe", h.token, map[string]any{
		"webhook_url": "https://hooks.example.com/p", "failure_notification_protocol": "https",
		"failure_notification_endpoint": "https://alerts.example.com/payrail",
	}).wantStatus(201)
	secret := res.str("signing_secret")
	if !secretRE.MatchString(secret) || res.str("status") != "active" {
		t.Fatalf("subscribe: %s", res.body)
	}
	// Read once: never shown again, not even by a re-subscribe.
	res = h.do("GET", "/organization/subscribe", h.token, nil).wantStatus(200)
	if _, shown := res.json["signing_secret"]; shown || res.str("webhook_url") != "https://hooks.example.com/p" {
		t.Fatalf("get: %s", res.body)
	}
	h.do("GET", "/organization/subscribe", ops, nil).wantError(403, codeForbidden)
	res = h.do("PUT", "/organization/subscribe", h.token, map[string]any{"webhook_url": "https://hooks.example.com/v2"}).wantStatus(201)
	if _, shown := res.json["signing_secret"]; shown || res.json["failure_notification_endpoint"] != nil {
		t.Fatalf("re-subscribe: %s", res.body)
	}
	res = h.do("PUT", "/organization/subscribe/rotate_signing_secret", h.token, nil).wantStatus(200)
	if s := res.str("signing_secret"); !secretRE.MatchString(s) || s == secret {
		t.Fatalf("rotate: %s", res.body)
	}
	h.do("PUT", "/organization/subscribe/resume", h.token, nil).wantStatus(200)
	res = h.do("PUT", "/organization/subscribe/replay_failed_events", h.token, nil).wantStatus(202)
	if res.json["replayed_events"] != float64(0) {
		t.Fatalf("replay: %s", res.body)
	}
	h.do("DELETE", "/organization/subscribe", h.token, nil).wantStatus(204)
	h.do("GET", "/organization/subscribe", h.token, nil).wantError(404, codeNotFound)
}

func TestWebhookSubscriptionAllowPrivate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withWebhooksAllowPrivate)
	h.do("PUT", "/organization/subscribe", h.token, map[string]any{
		"webhook_url": "http://127.0.0.1:9/x", "failure_notification_protocol": "http",
		"failure_notification_endpoint": "http://127.0.0.1:9/alerts",
	}).wantStatus(201)
}
