package template

import "testing"

func TestSmoke(t *testing.T) {
	vals := map[string][]string{
		"pan":    {"4111111111111111", "4111 1111 1111 1111", "378282246310005", "4111-1111-1111-1111"},
		"ssn":    {"123-45-6789", "123456789"},
		"email":  {"john.doe@example.com", "a@b.co", "First.Last+tag@Sub.Example.ORG"},
		"phone":  {"+14155550123", "(415) 555-0123", "020 7946 0958", "+44 20 7946 0958", "+3531234567"},
		"name":   {"John Smith", "José Ørsted-Åberg", "O'Brien", "Иван Петров", "ß"},
		"date":   {"1984-06-15", "0001-01-01", "9999-12-31", "2000-02-29"},
		"iban":   {"DE89370400440532013000", "GB29 NWBK 6016 1331 9268 19", "NO9386011117947"},
		"digits": {"1234", "1234567890", "0"},
		"alnum":  {"AbC123xyZ", "a1"},
		"opaque": {"hello world", "x"},
	}
	for _, n := range BuiltinNames() {
		tm := mustBuiltin(n)
		k := newKeys("d1", n)
		for _, v := range vals[n] {
			if err := tm.Check(v); err != nil {
				t.Errorf("%s: Check(%q) = %v", n, v, err)
				continue
			}
			c, err := tm.Candidate(k, v, 0, seeded(1))
			if err != nil {
				t.Errorf("%s: Candidate(%q) = %v", n, v, err)
				continue
			}
			fs, _ := tm.FreeSpaceOf(v)
			t.Logf("%-6s %-32q -> %-32q mask %-32q space 10^%.2f", n, v, c, tm.Mask(v), fs)
			if err := tm.Check(c); err != nil {
				t.Errorf("%s: Check(candidate %q) = %v", n, c, err)
			}
		}
	}
}
