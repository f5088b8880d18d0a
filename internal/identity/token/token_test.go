package token

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"maps"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/keys"
	"bulwark/internal/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const (
	testIssuer   = "https://bulwark.test"
	testAudience = "bulwark-api"
)

// memKeys is an in-memory Keys: a current kid and the keys that verify.
type memKeys struct {
	mu      sync.Mutex
	current string
	keys    map[string][]byte
	err     error // returned by VerificationKeys when set

	verifyCalls atomic.Int64
}

func newMemKeys(t testing.TB) *memKeys {
	m := &memKeys{keys: map[string][]byte{}}
	m.rotate(t)
	return m
}

func randomKey(t testing.TB) []byte {
	k := make([]byte, 64)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// rotate adds a new current key and returns its kid; the old one still
// verifies.
func (m *memKeys) rotate(t testing.TB) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	kid := fmt.Sprintf("kid-%d", len(m.keys)+1)
	m.keys[kid] = randomKey(t)
	m.current = kid
	return kid
}

func (m *memKeys) remove(kid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, kid)
}

func (m *memKeys) key(kid string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[kid]
}

func (m *memKeys) setErr(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

func (m *memKeys) SigningKey(_ context.Context, purpose string) (string, []byte, error) {
	if purpose != keys.SignAccessToken {
		return "", nil, fmt.Errorf("purpose %q", purpose)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current, bytes.Clone(m.keys[m.current]), nil
}

func (m *memKeys) VerificationKeys(ctx context.Context, purpose string) (map[string][]byte, error) {
	m.verifyCalls.Add(1)
	if purpose != keys.SignAccessToken {
		return nil, fmt.Errorf("purpose %q", purpose)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	out := maps.Clone(m.keys)
	for k, v := range out {
		out[k] = bytes.Clone(v)
	}
	return out, nil
}

// clock is a settable clock.
type clock = storetest.Clock

func newClock() *clock { return storetest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) }

func newIssuer(t testing.TB, k Keys, clk *clock) *Issuer {
	t.Helper()
	is, err := NewIssuer(k, Options{Issuer: testIssuer, Audience: testAudience, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// forge builds a token from raw header and claims JSON, MACed with h and
// key (no signature when h is nil).
func forge(headerJSON, claimsJSON string, h func() hash.Hash, key []byte) string {
	input := b64(headerJSON) + "." + b64(claimsJSON)
	if h == nil {
		return input + "."
	}
	mac := hmac.New(h, key)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func hs512Header(kid string) string { return `{"alg":"HS512","typ":"JWT","kid":"` + kid + `"}` }

// claimsJSON returns valid claims at now, changed by edits: a nil value
// drops the claim.
func claimsJSON(now time.Time, edits map[string]any) string {
	c := map[string]any{
		"iss": testIssuer, "sub": "user-1", "aud": testAudience, "sid": "session-1", "jti": "jti-1",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "amr": []string{"pwd"},
	}
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// manyClaims returns n claims of others, as edits.
func manyClaims(n int) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[fmt.Sprintf("x%d", i)] = i
	}
	return m
}

// checkRefused fails unless err is the refusal of a token for reason,
// showing nothing of the token.
func checkRefused(t *testing.T, tok string, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified, want refused for %q", reason)
	}
	var inv *Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("error %v is not an *Invalid", err)
	}
	if inv.Reason != reason {
		t.Fatalf("reason %q, want %q", inv.Reason, reason)
	}
	if c := apperr.CodeOf(err); c != apperr.Unauthorized {
		t.Fatalf("code %q, want unauthorized", c)
	}
	if m := apperr.MessageOf(err); m != invalidMessage {
		t.Fatalf("message %q, want the fixed one", m)
	}
	for _, part := range strings.Split(tok, ".") {
		if len(part) >= 4 && strings.Contains(err.Error(), part) {
			t.Fatalf("error %q shows part of the token", err)
		}
	}
}

func TestIssue_VerifyReturnsTheClaimsIssued(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	is := newIssuer(t, k, clk)

	tok, issued, err := is.Issue(ctx, "user-1", "session-1", []string{"pwd", "otp"})
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now().Truncate(time.Second)
	want := Claims{Issuer: testIssuer, Subject: "user-1", Session: "session-1", ID: issued.ID,
		Audience: []string{testAudience}, IssuedAt: now, NotBefore: now, Expires: now.Add(DefaultTTL),
		AMR: []string{"pwd", "otp"}}
	if !reflect.DeepEqual(issued, want) {
		t.Fatalf("Issue claims\n %+v\nwant\n %+v", issued, want)
	}
	got, err := is.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !reflect.DeepEqual(got, issued) {
		t.Fatalf("Verify claims\n %+v\nwant\n %+v", got, issued)
	}

	parts := strings.Split(tok, ".")
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if string(h) != hs512Header(k.current) {
		t.Fatalf("header %s", h)
	}
	id, err := base64.RawURLEncoding.DecodeString(issued.ID)
	if err != nil || len(id) != 16 {
		t.Fatalf("jti %q is not 128 bits of base64url", issued.ID)
	}
	_, again, _ := is.Issue(ctx, "user-1", "session-1", nil)
	if again.ID == issued.ID {
		t.Fatal("two tokens with one jti")
	}
	if again.AMR != nil {
		t.Fatalf("amr %v, want none", again.AMR)
	}
}

func TestIssue_RefusesWhatItCannotSign(t *testing.T) {
	ctx := context.Background()
	k := newMemKeys(t)
	is := newIssuer(t, k, newClock())
	for _, tc := range []struct{ name, sub, sid string }{
		{"no subject", "", "s"}, {"no session", "u", ""}, {"invalid UTF-8", "u\xff", "s"},
	} {
		if _, _, err := is.Issue(ctx, tc.sub, tc.sid, nil); err == nil {
			t.Errorf("%s: issued", tc.name)
		}
	}
	k.mu.Lock()
	k.keys[k.current] = k.keys[k.current][:32]
	k.mu.Unlock()
	if _, _, err := is.Issue(ctx, "u", "s", nil); err == nil {
		t.Error("issued with a 32-byte key")
	}
}

func TestNewIssuer_RefusesBadOptions(t *testing.T) {
	k := newMemKeys(t)
	for name, o := range map[string]Options{
		"no issuer":      {Audience: "a"},
		"no audience":    {Issuer: "i"},
		"leeway over 60": {Issuer: "i", Audience: "a", Leeway: 61 * time.Second},
		"negative TTL":   {Issuer: "i", Audience: "a", TTL: -time.Second},
		"TTL under 1 s":  {Issuer: "i", Audience: "a", TTL: time.Millisecond},
	} {
		if _, err := NewIssuer(k, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewIssuer(nil, Options{Issuer: "i", Audience: "a"}); err == nil {
		t.Error("no keys: accepted")
	}
}

func TestVerify_AcceptsValidTokens(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	is := newIssuer(t, k, clk)
	kid, key := k.current, k.key(k.current)
	now := clk.Now()
	for _, tc := range []struct {
		name   string
		header string
		edits  map[string]any
	}{
		{"plain", hs512Header(kid), nil},
		{"audience in an array", hs512Header(kid), map[string]any{"aud": []string{"other", testAudience}}},
		{"expired within the leeway", hs512Header(kid), map[string]any{"exp": now.Add(-29 * time.Second).Unix()}},
		{"not before within the leeway", hs512Header(kid), map[string]any{"nbf": now.Add(29 * time.Second).Unix()}},
		{"issued ahead within the leeway", hs512Header(kid), map[string]any{"iat": now.Add(29 * time.Second).Unix()}},
		{"no amr", hs512Header(kid), map[string]any{"amr": nil}},
		{"claims of others are ignored", hs512Header(kid), map[string]any{"Sub": "user-2", "scope": map[string]any{"a": []any{1.5, true, nil}}}},
		{"64 claims", hs512Header(kid), manyClaims(64 - 9)},
		{"header members in another order", `{"kid":"` + kid + `","typ":"JWT","alg":"HS512"}`, nil},
		{"white space in the JSON", " {\n\"alg\" : \"HS512\",\t\"typ\":\"JWT\", \"kid\":\"" + kid + "\" } ", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := is.Verify(ctx, forge(tc.header, claimsJSON(now, tc.edits), sha512.New, key))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Subject != "user-1" || c.Session != "session-1" || c.ID != "jti-1" {
				t.Fatalf("claims %+v", c)
			}
		})
	}
}

func TestVerify_RefusesBadTokens(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	kid, key := k.current, k.key(k.current)
	other := k.rotate(t) // a second valid key
	k.mu.Lock()
	k.current = kid
	k.mu.Unlock()
	now := clk.Now()
	valid := claimsJSON(now, nil)
	hs := func(header, claims string) string { return forge(header, claims, sha512.New, key) }
	edit := func(edits map[string]any) string { return hs(hs512Header(kid), claimsJSON(now, edits)) }
	good := hs(hs512Header(kid), valid)
	parts := strings.Split(good, ".")
	sigOf := func(tok string) string { return tok[strings.LastIndexByte(tok, '.')+1:] }
	big := strings.Repeat("x", MaxTokenSize)

	for _, tc := range []struct {
		name, token, reason string
	}{
		// The algorithm: refused before any key is used.
		{"alg none, unsigned", forge(`{"alg":"none","typ":"JWT","kid":"`+kid+`"}`, valid, nil, nil), ReasonAlg},
		{"alg none, signed", forge(`{"alg":"none","typ":"JWT","kid":"`+kid+`"}`, valid, sha512.New, key), ReasonAlg},
		{"alg none, no kid", forge(`{"alg":"none"}`, valid, nil, nil), ReasonAlg},
		{"alg None", forge(`{"alg":"None","typ":"JWT","kid":"`+kid+`"}`, valid, nil, nil), ReasonAlg},
		{"HS256 with the right key", forge(`{"alg":"HS256","typ":"JWT","kid":"`+kid+`"}`, valid, sha256.New, key), ReasonAlg},
		{"HS384 with the right key", forge(`{"alg":"HS384","typ":"JWT","kid":"`+kid+`"}`, valid, sha512.New384, key), ReasonAlg},
		{"RS256", b64(`{"alg":"RS256","typ":"JWT","kid":"`+kid+`"}`) + "." + b64(valid) + "." + b64(strings.Repeat("s", 256)), ReasonAlg},
		{"ES256", b64(`{"alg":"ES256","typ":"JWT","kid":"`+kid+`"}`) + "." + b64(valid) + "." + b64(strings.Repeat("s", 64)), ReasonAlg},
		{"EdDSA", b64(`{"alg":"EdDSA","typ":"JWT","kid":"`+kid+`"}`) + "." + b64(valid) + "." + b64(strings.Repeat("s", 64)), ReasonAlg},
		{"hs512 in lower case", hs(`{"alg":"hs512","typ":"JWT","kid":"`+kid+`"}`, valid), ReasonAlg},
		{"HS512 with a space", hs(`{"alg":"HS512 ","typ":"JWT","kid":"`+kid+`"}`, valid), ReasonAlg},
		{"no alg", hs(`{"typ":"JWT","kid":"`+kid+`"}`, valid), ReasonAlg},

		// The key.
		{"kid not in the keyring", hs(hs512Header("kid-99"), valid), ReasonKid},
		{"no kid", hs(`{"alg":"HS512","typ":"JWT"}`, valid), ReasonKid},
		{"empty kid", hs(hs512Header(""), valid), ReasonKid},
		{"kid too long", hs(hs512Header(strings.Repeat("k", 129)), valid), ReasonKid},
		{"another key under a valid kid", forge(hs512Header(kid), valid, sha512.New, randomKey(t)), ReasonSignature},
		{"the other valid key under this kid", forge(hs512Header(kid), valid, sha512.New, k.key(other)), ReasonSignature},
		{"the signature of another token", parts[0] + "." + b64(claimsJSON(now, map[string]any{"sub": "admin"})) + "." + parts[2], ReasonSignature},
		{"tampered payload", parts[0] + "." + parts[1][:10] + "X" + parts[1][11:] + "." + parts[2], ReasonSignature},
		{"tampered header", b64(`{"alg":"HS512", "typ":"JWT","kid":"`+kid+`"}`) + "." + parts[1] + "." + parts[2], ReasonSignature},
		{"header moved to another valid kid", b64(hs512Header(other)) + "." + parts[1] + "." + parts[2], ReasonSignature},
		{"no signature", parts[0] + "." + parts[1] + ".", ReasonSignature},
		{"short signature", parts[0] + "." + parts[1] + "." + parts[2][:43], ReasonSignature},
		{"signature with padding", good + "==", ReasonSignature},
		{"signature with a new line", good[:len(good)-10] + "\n" + good[len(good)-10:], ReasonSignature},
		{"signature with trailing bits", good[:len(good)-1] + string(good[len(good)-1]^1), ReasonMalformed},

		// The times.
		{"expired", edit(map[string]any{"exp": now.Add(-31 * time.Second).Unix()}), ReasonExpired},
		{"expired at exactly the leeway", edit(map[string]any{"exp": now.Add(-30 * time.Second).Unix()}), ReasonExpired},
		{"not yet valid", edit(map[string]any{"nbf": now.Add(31 * time.Second).Unix()}), ReasonNotYetValid},
		{"issued in the future", edit(map[string]any{"iat": now.Add(31 * time.Second).Unix()}), ReasonIssuedInFuture},

		// The claims.
		{"wrong issuer", edit(map[string]any{"iss": "https://evil.test"}), ReasonIssuer},
		{"no issuer", edit(map[string]any{"iss": nil}), ReasonIssuer},
		{"wrong audience", edit(map[string]any{"aud": "other-api"}), ReasonAudience},
		{"audience array without ours", edit(map[string]any{"aud": []string{"a", "b"}}), ReasonAudience},
		{"empty audience array", edit(map[string]any{"aud": []string{}}), ReasonAudience},
		{"no audience", edit(map[string]any{"aud": nil}), ReasonAudience},
		{"no sub", edit(map[string]any{"sub": nil}), ReasonClaims},
		{"empty sub", edit(map[string]any{"sub": ""}), ReasonClaims},
		{"no sid", edit(map[string]any{"sid": nil}), ReasonClaims},
		{"no jti", edit(map[string]any{"jti": nil}), ReasonClaims},
		{"no exp", edit(map[string]any{"exp": nil}), ReasonClaims},
		{"no nbf", edit(map[string]any{"nbf": nil}), ReasonClaims},
		{"no iat", edit(map[string]any{"iat": nil}), ReasonClaims},
		{"sub a number", edit(map[string]any{"sub": 42}), ReasonClaims},
		{"sub null", edit(map[string]any{"sub": json.RawMessage("null")}), ReasonClaims},
		{"exp a string", edit(map[string]any{"exp": "2030-01-01"}), ReasonClaims},
		{"exp with a fraction", edit(map[string]any{"exp": json.RawMessage(fmt.Sprint(now.Unix()+60) + ".5")}), ReasonClaims},
		{"exp with an exponent", edit(map[string]any{"exp": json.RawMessage("1.9e9")}), ReasonClaims},
		{"exp negative", edit(map[string]any{"exp": -1}), ReasonClaims},
		{"exp past year 9999", edit(map[string]any{"exp": int64(1e15)}), ReasonClaims},
		{"amr not an array", edit(map[string]any{"amr": "pwd"}), ReasonClaims},
		{"aud a number", edit(map[string]any{"aud": 1}), ReasonClaims},

		// Strict JSON, checked only once the MAC matched.
		{"repeated claim", hs(hs512Header(kid), strings.Replace(valid, `"sub":"user-1"`, `"sub":"user-1","sub":"admin"`, 1)), ReasonMalformed},
		{"repeated claim, escaped", hs(hs512Header(kid), strings.Replace(valid, `"sub":"user-1"`, `"sub":"user-1","\u0073ub":"admin"`, 1)), ReasonMalformed},
		{"repeated unknown claim", hs(hs512Header(kid), strings.Replace(valid, `{`, `{"x":1,"x":2,`, 1)), ReasonMalformed},
		{"claims not JSON", hs(hs512Header(kid), `{"sub":`), ReasonMalformed},
		{"claims followed by more", hs(hs512Header(kid), valid+"{}"), ReasonMalformed},
		{"claims an array", hs(hs512Header(kid), `[`+valid+`]`), ReasonMalformed},
		{"claims with a trailing comma", hs(hs512Header(kid), strings.TrimSuffix(valid, "}")+",}"), ReasonMalformed},
		{"invalid UTF-8 in a claim", hs(hs512Header(kid), strings.Replace(valid, `"user-1"`, "\"user-\xff\"", 1)), ReasonMalformed},
		{"lone surrogate in a claim", hs(hs512Header(kid), strings.Replace(valid, `"user-1"`, `"user-\ud800"`, 1)), ReasonMalformed},
		{"control character in a claim", hs(hs512Header(kid), strings.Replace(valid, `"user-1"`, "\"user-\x01\"", 1)), ReasonMalformed},
		{"65 claims", edit(manyClaims(65 - 9)), ReasonMalformed},
		{"nested too deep", hs(hs512Header(kid), strings.Replace(valid, `{`, `{"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`,`, 1)), ReasonMalformed},

		// The header, read before any key is used.
		{"repeated alg", hs(`{"alg":"none","alg":"HS512","typ":"JWT","kid":"`+kid+`"}`, valid), ReasonMalformed},
		{"repeated alg, both HS512", hs(`{"alg":"HS512","alg":"HS512","typ":"JWT","kid":"`+kid+`"}`, valid), ReasonMalformed},
		{"repeated kid", hs(`{"alg":"HS512","typ":"JWT","kid":"kid-99","kid":"`+kid+`"}`, valid), ReasonMalformed},
		{"crit in the header", hs(`{"alg":"HS512","typ":"JWT","kid":"`+kid+`","crit":["exp"]}`, valid), ReasonMalformed},
		{"jwk in the header", hs(`{"alg":"HS512","typ":"JWT","kid":"`+kid+`","jwk":{}}`, valid), ReasonMalformed},
		{"another typ", hs(`{"alg":"HS512","typ":"at+jwt","kid":"`+kid+`"}`, valid), ReasonMalformed},
		{"no typ", hs(`{"alg":"HS512","kid":"`+kid+`"}`, valid), ReasonMalformed},
		{"alg a number", hs(`{"alg":512,"typ":"JWT","kid":"`+kid+`"}`, valid), ReasonMalformed},
		{"header not JSON", hs(`{"alg":"HS512"`, valid), ReasonMalformed},
		{"header too long", hs(`{"alg":"HS512","typ":"JWT","kid":"`+kid+`"`+strings.Repeat(" ", 400)+`}`, valid), ReasonMalformed},

		// The shape.
		{"empty", "", ReasonMalformed},
		{"one segment", parts[0], ReasonMalformed},
		{"two segments", parts[0] + "." + parts[1], ReasonMalformed},
		{"four segments", good + "." + parts[2], ReasonMalformed},
		{"a trailing dot", good + ".", ReasonMalformed},
		{"five segments (JWE)", good + ".a.b", ReasonMalformed},
		{"only dots", "..", ReasonMalformed},
		{"header not base64url", "eyJ!" + good[4:], ReasonMalformed},
		{"header in standard base64", strings.NewReplacer("-", "+", "_", "/").Replace(parts[0]) + "+." + parts[1] + "." + parts[2], ReasonMalformed},
		{"header with padding", parts[0] + "==." + parts[1] + "." + parts[2], ReasonMalformed},
		{"header with a new line", parts[0][:4] + "\n" + parts[0][4:] + "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"signature not base64url", parts[0] + "." + parts[1] + "." + strings.Repeat("*", len(sigOf(good))), ReasonMalformed},
		{"oversized", good + big[:MaxTokenSize-len(good)+1], ReasonTooLarge},
		{"oversized, all dots", strings.Repeat(".", MaxTokenSize+1), ReasonTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := newIssuer(t, k, clk) // a cold cache for each case
			before := k.verifyCalls.Load()
			c, err := is.Verify(ctx, tc.token)
			if !reflect.DeepEqual(c, Claims{}) {
				t.Errorf("claims %+v returned with a refusal", c)
			}
			checkRefused(t, tc.token, err, tc.reason)
			if n := k.verifyCalls.Load() - before; n != 0 && (tc.reason == ReasonAlg || tc.reason == ReasonTooLarge) {
				t.Errorf("the keyring was asked %d times for a token refused for %q", n, tc.reason)
			}
		})
	}
	if _, err := newIssuer(t, k, clk).Verify(ctx, good); err != nil {
		t.Fatalf("the token the cases were made of does not verify: %v", err)
	}
}

// The largest token not over MaxTokenSize is read (base64 skips some
// lengths: it is MaxTokenSize or one byte less).
func TestVerify_TokenOfMaxSizeIsRead(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	is := newIssuer(t, k, clk)
	var largest string
	for pad := 5000; pad < MaxTokenSize; pad++ {
		tok := forge(hs512Header(k.current), claimsJSON(clk.Now(), map[string]any{"pad": strings.Repeat("p", pad)}), sha512.New, k.key(k.current))
		if len(tok) > MaxTokenSize {
			break
		}
		largest = tok
	}
	if len(largest) < MaxTokenSize-1 {
		t.Fatalf("the largest token made is %d bytes", len(largest))
	}
	if _, err := is.Verify(ctx, largest); err != nil {
		t.Fatalf("a token of %d bytes: %v", len(largest), err)
	}
}
