package tokenstore

import (
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/zalando/go-keyring"
	ss "github.com/zalando/go-keyring/secret_service"
)

// systemGet reads one entry from the Secret Service in two D-Bus calls
// (SearchItems, GetSecret), with the login collection and a "plain" session
// looked up once per process. go-keyring's Get makes seven calls each time
// (collection check, unlock, search, open session, unlock item, get, close
// session); a Load reads a header and its chunks, so this is most of the
// keyring's cost in `pbench-auth call` (issue 7). The session is closed by the
// Secret Service when the process disconnects from the bus.
//
// Anything but a clean answer — a locked collection or item, which needs
// go-keyring's unlock prompt, or a failed lookup — falls back to
// go-keyring's Get, so the behaviour and errors stay go-keyring's.
func systemGet(service, user string) (string, error) {
	s, ok := fastSecretService()
	if !ok {
		return keyring.Get(service, user)
	}
	items, err := s.svc.SearchItems(s.collection, map[string]string{"username": user, "service": service})
	if err != nil {
		return keyring.Get(service, user)
	}
	if len(items) == 0 {
		return "", keyring.ErrNotFound
	}
	secret, err := s.svc.GetSecret(items[0], s.session)
	if err != nil {
		return keyring.Get(service, user)
	}
	return string(secret.Value), nil
}

type secretService struct {
	svc        *ss.SecretService
	collection dbus.BusObject
	session    dbus.ObjectPath
}

var (
	secretServiceMu sync.Mutex
	secretServiceV  *secretService
)

// fastSecretService connects once; a failure is retried on the next call
// (which then goes through go-keyring and reports its error).
func fastSecretService() (*secretService, bool) {
	secretServiceMu.Lock()
	defer secretServiceMu.Unlock()
	if secretServiceV != nil {
		return secretServiceV, true
	}
	svc, err := ss.NewSecretService()
	if err != nil {
		return nil, false
	}
	// Two independent round trips: run them together.
	var collection dbus.BusObject
	done := make(chan struct{})
	go func() { collection = svc.GetLoginCollection(); close(done) }()
	session, err := svc.OpenSession()
	<-done
	if err != nil {
		return nil, false
	}
	secretServiceV = &secretService{svc: svc, collection: collection, session: session.Path()}
	return secretServiceV, true
}
