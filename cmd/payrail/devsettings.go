package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// devSettingsFile is where payrail dev writes the settings operator
// commands started beside it need (payrail nacha …), the way it writes
// nats.url for payrail events: a new shell after `make run` finds dev's
// database and drop directory without exporting anything.
const devSettingsFile = "dev-settings.json"

// devShared are the settings payrail dev shares with payrail nacha.
var devShared = []string{"PAYRAIL_DATABASE_URL", "PAYRAIL_NACHA_DROP_DIR", "PAYRAIL_NACHA_TIMEZONE", "PAYRAIL_NACHA_CUTOFFS"}

// writeDevSettings records dev's values of devShared under the var
// directory (the drop directory made absolute).
func writeDevSettings(cl *cmdline) error {
	out := map[string]string{}
	for _, name := range devShared {
		s := cl.setting(name)
		if s == nil {
			continue
		}
		v := s.def
		if s.flagged {
			v = s.flagRaw
		} else if s.envRaw != "" {
			v = s.envRaw
		}
		if name == "PAYRAIL_NACHA_DROP_DIR" {
			if abs, err := filepath.Abs(v); err == nil {
				v = abs
			}
		}
		out[name] = v
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cl.cfg.VarDir, devSettingsFile), append(b, '\n'), 0o600)
}

// loadDevSettings fills the devShared settings left at their defaults
// (neither variable nor flag) from payrail dev's file, when there is one.
func loadDevSettings(cl *cmdline) []string {
	path := filepath.Join(cl.cfg.VarDir, devSettingsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return []string{err.Error()}
	}
	var in map[string]string
	if err := json.Unmarshal(b, &in); err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	var problems []string
	for _, name := range devShared {
		s := cl.setting(name)
		v, ok := in[name]
		if s == nil || !ok || s.source != "" {
			continue
		}
		if err := s.parse(v); err != nil {
			problems = append(problems, fmt.Sprintf("%s from %s: %v", name, path, err))
			continue
		}
		s.source = path
	}
	return problems
}
