package intake

import (
	"errors"
	"net/http"
	"strings"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/webhooks"
)

// Webhook routes (docs/api.md "Webhooks"), all admin only: they configure
// where the org's events go and hand out the signing secret.
func (s *Server) webhookRoutes() {
	m := s.mux
	m.HandleFunc("PUT /organization/subscribe", s.authed(auth.PermConfigure, s.subscribeWebhook))
	m.HandleFunc("GET /organization/subscribe", s.authed(auth.PermConfigure, s.getWebhookSubscription))
	m.HandleFunc("DELETE /organization/subscribe", s.authed(auth.PermConfigure, s.deleteWebhookSubscription))
	m.HandleFunc("PUT /organization/subscribe/resume", s.authed(auth.PermConfigure, s.resumeWebhook))
	m.HandleFunc("PUT /organization/subscribe/rotate_signing_secret", s.authed(auth.PermConfigure, s.rotateWebhookSecret))
	m.HandleFunc("PUT /organization/subscribe/replay_failed_events", s.authed(auth.PermConfigure, s.replayWebhooks))
}

type webhookSubscriptionJSON struct {
	WebhookURL                  string  `json:"webhook_url"`
	FailureNotificationProtocol *string `json:"failure_notification_protocol"`
	FailureNotificationEndpoint *string `json:"failure_notification_endpoint"`
	Status                      string  `json:"status"` // active | paused
	PausedAt                    *string `json:"paused_at"`
	PausedReason                *string `json:"paused_reason"`
	ConsecutiveFailures         int     `json:"consecutive_failures"`
	PendingEvents               int     `json:"pending_events"`
	FailedEvents                int     `json:"failed_events"` // the dead-letter list
	SigningSecret               string  `json:"signing_secret,omitempty"`
	SigningSecretRotatedAt      string  `json:"signing_secret_rotated_at"`
	CreatedAt                   string  `json:"created_at"`
	UpdatedAt                   string  `json:"updated_at"`
}

func renderWebhookSubscription(w store.WebhookSubscription, secret string) webhookSubscriptionJSON {
	out := webhookSubscriptionJSON{
		WebhookURL: w.URL, Status: "active", ConsecutiveFailures: w.ConsecutiveFailures,
		PendingEvents: w.Pending, FailedEvents: w.DeadLetters, SigningSecret: secret,
		SigningSecretRotatedAt: formatTime(w.SecretRotatedAt), CreatedAt: formatTime(w.CreatedAt), UpdatedAt: formatTime(w.UpdatedAt),
	}
	if w.NotifyProtocol != "" {
		out.FailureNotificationProtocol, out.FailureNotificationEndpoint = &w.NotifyProtocol, &w.NotifyEndpoint
	}
	if w.PausedAt != nil {
		p, reason := formatTime(*w.PausedAt), w.PausedReason
		out.Status, out.PausedAt, out.PausedReason = "paused", &p, &reason
	}
	return out
}

// subscribeWebhook answers PUT /organization/subscribe: 201 with the
// subscription. The first subscription of an org carries its signing
// secret, shown this once; a later PUT replaces the URL and the failure
// notification, keeps the secret, and resumes a paused endpoint.
func (s *Server) subscribeWebhook(w http.ResponseWriter, r *http.Request) error {
	o, aerr := readObject(r)
	if aerr != nil {
		return aerr
	}
	var sub store.WebhookSubscription
	if u, ok := o.str("webhook_url"); ok {
		o.check("webhook_url", webhooks.ValidateURL(strings.TrimSpace(u), s.webhooksAllowPrivate))
		sub.URL = strings.TrimSpace(u)
	} else {
		o.require("webhook_url")
	}
	// Canopy names an SNS protocol here; payrail sends the notification
	// itself and speaks only HTTPS (http too where private endpoints are
	// allowed). Email and SMS would need a mail or SMS provider.
	protocols := []string{"https"}
	if s.webhooksAllowPrivate {
		protocols = append(protocols, "http")
	}
	proto, hasProto := o.enum("failure_notification_protocol", protocols...)
	endpoint, hasEndpoint := o.str("failure_notification_endpoint")
	switch {
	case hasProto && !hasEndpoint && !o.has("failure_notification_endpoint"):
		o.p.add(o.pointer("failure_notification_endpoint"), "is required with failure_notification_protocol")
	case hasEndpoint && !o.has("failure_notification_protocol"):
		o.p.add(o.pointer("failure_notification_protocol"), "is required with failure_notification_endpoint")
	case hasProto && hasEndpoint:
		endpoint = strings.TrimSpace(endpoint)
		if o.check("failure_notification_endpoint", webhooks.ValidateURL(endpoint, s.webhooksAllowPrivate)) &&
			!strings.HasPrefix(endpoint, proto+"://") {
			o.p.add(o.pointer("failure_notification_endpoint"), "must be a "+proto+" URL, as failure_notification_protocol says")
		}
		sub.NotifyProtocol, sub.NotifyEndpoint = proto, endpoint
	}
	o.finish()
	if aerr := o.p.err(); aerr != nil {
		return aerr
	}
	org := principal(r).OrgID
	out, secret, err := s.store.SubscribeWebhook(r.Context(), org, sub)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "webhook subscribed", "org_id", org, "new", secret != "")
	writeJSON(w, http.StatusCreated, renderWebhookSubscription(out, secret))
	return nil
}

func (s *Server) getWebhookSubscription(w http.ResponseWriter, r *http.Request) error {
	out, err := s.store.WebhookSubscription(r.Context(), principal(r).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("webhook subscription")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderWebhookSubscription(out, ""))
	return nil
}

func (s *Server) deleteWebhookSubscription(w http.ResponseWriter, r *http.Request) error {
	err := s.store.DeleteWebhookSubscription(r.Context(), principal(r).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("webhook subscription")
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "webhook unsubscribed", "org_id", principal(r).OrgID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) resumeWebhook(w http.ResponseWriter, r *http.Request) error {
	out, err := s.store.ResumeWebhook(r.Context(), principal(r).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("webhook subscription")
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "webhook endpoint resumed", "org_id", principal(r).OrgID)
	writeJSON(w, http.StatusOK, renderWebhookSubscription(out, ""))
	return nil
}

func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	org := principal(r).OrgID
	secret, err := s.store.RotateWebhookSecret(r.Context(), org)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("webhook subscription")
	}
	if err != nil {
		return err
	}
	out, err := s.store.WebhookSubscription(r.Context(), org)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "webhook signing secret rotated", "org_id", org)
	writeJSON(w, http.StatusOK, renderWebhookSubscription(out, secret))
	return nil
}

func (s *Server) replayWebhooks(w http.ResponseWriter, r *http.Request) error {
	n, err := s.store.ReplayWebhookDeadLetters(r.Context(), principal(r).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("webhook subscription")
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "webhook dead letters replayed", "org_id", principal(r).OrgID, "events", n)
	writeJSON(w, http.StatusAccepted, map[string]int64{"replayed_events": n})
	return nil
}
