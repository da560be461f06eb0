package tokenstore

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/zalando/go-keyring"
	ss "github.com/zalando/go-keyring/secret_service"
)

// systemGet reads one entry from the Secret Service in two D-Bus calls
// (SearchItems, GetSecret), where go-keyring's Get makes seven each time
// (collection check, unlock, search, open session, unlock item, get, close
// session); a Load reads a header and its chunks, so this is most of the
// keyring's cost in `pbench-auth call` (issue 7).
//
// Anything but a clean answer — a locked item, which needs go-keyring's
// unlock prompt, several matching items, no "login" collection (go-keyring
// then uses the default alias), or a failed call — falls back to
// go-keyring's Get, so the behaviour and errors stay go-keyring's.
func systemGet(service, user string) (string, error) {
	v, err := fastGet(service, user)
	if errors.Is(err, errUseGoKeyring) {
		return keyring.Get(service, user)
	}
	return v, err
}

// errUseGoKeyring is fastGet's answer when go-keyring must answer instead.
var errUseGoKeyring = errors.New("read through go-keyring")

const (
	secretsName        = "org.freedesktop.secrets"
	secretsPath        = "/org/freedesktop/secrets"
	loginCollection    = "/org/freedesktop/secrets/collection/login"
	secretServiceIface = "org.freedesktop.Secret.Service"
)

// fastGet reads an entry as go-keyring's Get would, or answers
// errUseGoKeyring. The search goes to the Service (all collections) rather than to the
// login collection, so that it need not wait for the check that the login
// collection exists: the check, the session and the first searches are in
// flight together. Only items under the login collection count, which is
// where go-keyring reads and writes when that collection exists.
func fastGet(service, user string) (string, error) {
	s := fastSecretService()
	if s == nil {
		return "", errUseGoKeyring
	}
	var unlocked, locked []dbus.ObjectPath
	call := s.conn.Object(secretsName, secretsPath).Call(secretServiceIface+".SearchItems", 0,
		map[string]string{"username": user, "service": service})
	if err := call.Store(&unlocked, &locked); err != nil {
		return "", errUseGoKeyring
	}
	<-s.ready
	if !s.usable {
		return "", errUseGoKeyring
	}
	inLogin := func(p dbus.ObjectPath) bool { return strings.HasPrefix(string(p), loginCollection+"/") }
	var found []dbus.ObjectPath
	for _, p := range unlocked {
		if inLogin(p) {
			found = append(found, p)
		}
	}
	for _, p := range locked {
		if inLogin(p) {
			return "", errUseGoKeyring
		}
	}
	switch len(found) {
	case 0:
		return "", keyring.ErrNotFound
	case 1:
	default:
		return "", errUseGoKeyring
	}
	var secret ss.Secret
	err := s.conn.Object(secretsName, found[0]).Call("org.freedesktop.Secret.Item.GetSecret", 0, s.session).Store(&secret)
	if err != nil { // e.g. locked meanwhile: go-keyring unlocks it
		return "", errUseGoKeyring
	}
	return string(secret.Value), nil
}

// secretService is the process's own connection to the Secret Service,
// with a "plain" session (closed by the Secret Service when the process
// disconnects) and whether the login collection exists; both are known once
// ready is closed.
type secretService struct {
	conn    *dbus.Conn
	ready   chan struct{}
	session dbus.ObjectPath
	usable  bool // Hello answered, the session is open and the login collection exists
}

var (
	secretServiceMu sync.Mutex
	secretServiceV  *secretService
)

// fastSecretService connects once, on a private connection, and starts
// opening the session and checking the login collection in the background;
// nil if the bus cannot be reached (retried on the next call, which then
// goes through go-keyring and reports its error; go-keyring also starts a
// session bus where there is none). If Hello, the session or the check
// fails, every read of the process goes through go-keyring.
//
// The bus must see Hello first, but answers in order: the calls sent after
// it do not wait for its answer (as sd-bus does), which saves a round trip.
func fastSecretService() *secretService {
	secretServiceMu.Lock()
	defer secretServiceMu.Unlock()
	if secretServiceV != nil {
		return secretServiceV
	}
	conn, err := dbus.SessionBusPrivateNoAutoStartup()
	if err != nil {
		return nil
	}
	if err := conn.Auth(nil); err != nil {
		_ = conn.Close()
		return nil
	}
	hello := conn.BusObject().Go("org.freedesktop.DBus.Hello", 0, nil) // written before returning
	s := &secretService{conn: conn, ready: make(chan struct{})}
	go func() {
		defer close(s.ready)
		service := conn.Object(secretsName, secretsPath)
		check := service.Go("org.freedesktop.DBus.Properties.Get", 0, nil, secretServiceIface, "Collections")
		var ignored dbus.Variant
		var session dbus.ObjectPath
		errOpen := service.Call(secretServiceIface+".OpenSession", 0, "plain", dbus.MakeVariant("")).Store(&ignored, &session)
		<-hello.Done
		<-check.Done
		var collections []dbus.ObjectPath
		if hello.Err != nil || errOpen != nil || check.Store(&collections) != nil ||
			!slices.Contains(collections, loginCollection) {
			return
		}
		s.session, s.usable = session, true
	}()
	secretServiceV = s
	return s
}
