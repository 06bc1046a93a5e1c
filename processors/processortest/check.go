package processortest

import (
	"errors"
	"strings"

	"github.com/payrail/payrail/processors"
)

// validOutcomes are the outcomes a Result may carry.
var validOutcomes = map[processors.Outcome]bool{
	processors.Succeeded: true, processors.Declined: true, processors.PendingSettlement: true,
	processors.Held: true, processors.Retryable: true, processors.Permanent: true,
}

// Outcome is what a worker makes of a processor's answer: a
// *processors.Error says Retryable or Permanent, any other error is
// Retryable, and without an error the Result's Outcome stands (an empty
// one counts as Retryable).
func Outcome(res processors.Result, err error) processors.Outcome {
	if err == nil {
		if res.Outcome == "" {
			return processors.Retryable
		}
		return res.Outcome
	}
	var pe *processors.Error
	if errors.As(err, &pe) && (pe.Outcome == processors.Permanent || pe.Outcome == processors.Retryable) {
		return pe.Outcome
	}
	return processors.Retryable
}

// check applies contract 4 to one answer for job and returns it.
func (s *subject) check(call string, job processors.Job, res processors.Result, err error) answer {
	s.t.Helper()
	a := answer{res: res, err: err, outcome: Outcome(res, err)}
	for _, p := range Problems(job, res, err) {
		s.t.Errorf("%s (attempt %s): %s", call, job.AttemptID, p)
	}
	return a
}

// Problems lists what is wrong with one answer for job under contract 4:
// an invalid or self-contradicting outcome, an Instrument holding more
// than the last four characters, and card or account numbers in the
// answer's text. It is exported for processors' own tests.
func Problems(job processors.Job, res processors.Result, err error) []string {
	var out []string
	add := func(s string) { out = append(out, s) }

	var pe *processors.Error
	isPE := errors.As(err, &pe)
	switch {
	case err == nil && !validOutcomes[res.Outcome]:
		add("Result.Outcome " + quote(string(res.Outcome)) + " is not a valid outcome")
	case isPE && pe.Outcome != processors.Retryable && pe.Outcome != processors.Permanent:
		add("*processors.Error with Outcome " + quote(string(pe.Outcome)) + ", want retryable or permanent")
	case isPE && res.Outcome != "" && res.Outcome != pe.Outcome:
		add("Result.Outcome " + string(res.Outcome) + " contradicts the error's " + string(pe.Outcome))
	case err != nil && !isPE && res.Outcome != "" && res.Outcome != processors.Retryable:
		add("Result.Outcome " + string(res.Outcome) + " with an untyped error, which means retryable")
	}
	if res.RetryAfter < 0 {
		add("negative RetryAfter")
	}

	number := ""
	switch {
	case job.Card != nil:
		number = job.Card.Number
	case job.ACH != nil:
		number = job.ACH.AccountNumber
	}
	inst := res.Instrument
	if len(inst.LastFour) > 4 {
		add("Instrument.LastFour " + quote(inst.LastFour) + " holds more than four characters")
	} else if number != "" && inst.LastFour != "" && !strings.HasSuffix(number, inst.LastFour) {
		add("Instrument.LastFour " + quote(inst.LastFour) + " is not the end of the job's number")
	}

	texts := map[string]string{
		"Code": res.Code, "Message": res.Message,
		"Instrument.Kind": inst.Kind, "Instrument.Brand": inst.Brand,
	}
	if err != nil {
		texts["error"] = err.Error()
	}
	if isPE {
		texts["Error.Code"], texts["Error.Message"] = pe.Code, pe.Message
	}
	var secrets []string
	if number != "" {
		secrets = append(secrets, number)
	}
	if job.Card != nil && len(job.Card.CVV) >= 3 {
		secrets = append(secrets, job.Card.CVV)
	}
	for field, text := range texts {
		for _, secret := range secrets {
			if leaks(text, secret) {
				add(field + " holds the card or account number or the card code")
			}
		}
	}
	return out
}

// leaks reports whether text holds secret, or more than its last four
// characters: any eight consecutive characters of a longer secret.
func leaks(text, secret string) bool {
	if len(secret) <= 8 {
		return strings.Contains(text, secret)
	}
	for i := 0; i+8 <= len(secret); i++ {
		if strings.Contains(text, secret[i:i+8]) {
			return true
		}
	}
	return false
}

func quote(s string) string { return `"` + s + `"` }
