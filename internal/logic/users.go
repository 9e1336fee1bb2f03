package logic

import (
	"context"
	"errors"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// UserInfo is what any signed-in user may learn about another by name: that
// the account exists, its id and the spelling of its name. Sending to the
// name already tells as much (a message is stored, or "no such user");
// presence, devices, friends and blocks are not part of it.
type UserInfo struct {
	UserID   int64  `json:"user_id"`
	Username string `json:"username"`
}

// LookupUser finds one user by exact name (any case), so a client can
// refuse a chat with a name that does not exist before anything is sent.
// There is no prefix or wildcard form: this is not a directory. A user who
// blocked the caller is found like anyone else: answering otherwise would
// tell the caller about the block.
func (s *Service) LookupUser(ctx context.Context, id Identity, name string) (UserInfo, error) {
	if err := wire.ValidName(name); err != nil {
		return UserInfo{}, invalid(err.Error())
	}
	u, err := s.userByName(ctx, id.AppID, name)
	if errors.Is(err, store.ErrNotFound) {
		return UserInfo{}, notFound("no such user: "+name, err)
	} else if err != nil {
		return UserInfo{}, err
	}
	return UserInfo{UserID: u.ID, Username: u.Username}, nil
}
