package logic

import (
	"context"

	"github.com/magpie-im/magpie/internal/store"
)

// SetAppSettings replaces an app's settings (operators): every logic node
// uses them at once (forgetApps), or within appsTTL if it missed the word. The default app has none: its
// settings are the server's flags.
func (s *Service) SetAppSettings(ctx context.Context, name string, settings store.AppSettings) (store.App, error) {
	a, err := s.AppByName(ctx, name)
	if err != nil {
		return a, err
	}
	if a.ID == store.DefaultApp {
		return a, invalid("the default app's settings are the server's flags")
	}
	if err := ValidAppSettings(settings, s.sourceNames()); err != nil {
		return a, err
	}
	if err := s.store.SetAppSettings(ctx, a.ID, settings); err != nil {
		return a, explain(err)
	}
	s.forgetApps()
	a.Settings = settings
	return a, nil
}
