package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/parley-chat/parley/app/tools/client"
)

// A program that signs in as a guest, stays joined to one room across
// reconnects and sends one message, idempotently under its id. It needs a
// running server, so it is compiled but not run (no Output).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c, err := client.New(client.Config{
		URLs:  []string{"http://127.0.0.1:8080"}, // one or more instances
		Name:  "bot",                             // a guest; or Token: a session token
		Rooms: []string{"general"},
	})
	if err != nil {
		log.Fatal(err)
	}
	go c.Run(ctx) // connects, rejoins with after=last seq on every reconnect
	if err := c.WaitConnected(ctx); err != nil {
		log.Fatal(err)
	}
	// Retried under the same id until acknowledged: stored and delivered once.
	if err := c.Send(ctx, "general", "bot-hello-1", "hello from a program"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("general is at seq", c.Last("general"))
	for _, r := range c.Record().Rooms {
		fmt.Println(r.Room, "delivered", len(r.Delivered))
	}
}
