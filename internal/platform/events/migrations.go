package events

import (
	"embed"
	"io/fs"
)

//go:embed migrations
var migrations embed.FS

// Migrations create the outbox, inbox and dead-letter tables in a
// service's database, one folder per dialect. The runtime applies them as
// the set "events", beside the service's own set.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the folder is embedded above; this cannot happen
	}
	return sub
}
