package wrapper

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTailBufferReadFrom(t *testing.T) {
	input := strings.Repeat("0123456789", 10_000) + "END"
	tests := map[string]struct {
		r       io.Reader
		limit   int
		want    string
		wantErr error
	}{
		"all kept":                  {r: strings.NewReader("short"), limit: 100, want: "short"},
		"tail kept, in one piece":   {r: strings.NewReader(input), limit: 13, want: "0123456789END"},
		"tail kept, byte by byte":   {r: iotest.OneByteReader(strings.NewReader(input)), limit: 13, want: "0123456789END"},
		"tail kept, odd pieces":     {r: iotest.HalfReader(strings.NewReader(input)), limit: 7, want: "6789END"},
		"nothing kept, all counted": {r: strings.NewReader(input), limit: 0, want: ""},
		"read error": {
			r: io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(errors.New("broken pipe"))), limit: 100,
			want: "partial", wantErr: errors.New("broken pipe"),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tb := newTailBuffer(tc.limit)
			n, err := tb.ReadFrom(tc.r)
			if tc.wantErr != nil {
				require.EqualError(t, err, tc.wantErr.Error())
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.want, string(tb.Bytes()))
			assert.Equal(t, n-int64(len(tc.want)), tb.Dropped())
		})
	}
}
