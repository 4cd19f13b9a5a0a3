package store_test

import (
	"testing"

	"github.com/pvnbot/pvnbot/internal/store"
	"github.com/pvnbot/pvnbot/internal/store/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.DB { return store.NewMemory() })
}
