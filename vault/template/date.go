package template

import (
	"fmt"
	"math"
)

// dateT is an ISO 8601 calendar date YYYY-MM-DD (proleptic Gregorian) with a year in
// MinYear..MaxYear (default 0001..9999). The token is another valid date in that range: the
// day number is tokenized (FF1 over a 7-digit decimal domain, cycle-walked into the range),
// or with KeepYear the day of the year (always random: 365 or 366 tokens).
type dateT struct {
	common
	first int64 // day number of MinYear-01-01
	days  int   // days from MinYear-01-01 to MaxYear-12-31
}

func newDate(c common) *dateT {
	t := &dateT{common: c}
	t.first = daysFromCivil(c.def.MinYear, 1, 1)
	t.days = int(daysFromCivil(c.def.MaxYear, 12, 31) - t.first + 1)
	return t
}

func (t *dateT) parse(value string) (y, m, d int, err error) {
	if err := t.pre(value, 10); err != nil {
		return 0, 0, 0, err
	}
	if len(value) != 10 || value[4] != '-' || value[7] != '-' {
		return 0, 0, 0, t.fail("must be YYYY-MM-DD")
	}
	num := func(s string) (int, bool) {
		n := 0
		for i := 0; i < len(s); i++ {
			if !isDigit(s[i]) {
				return 0, false
			}
			n = n*10 + int(s[i]-'0')
		}
		return n, true
	}
	var ok1, ok2, ok3 bool
	y, ok1 = num(value[:4])
	m, ok2 = num(value[5:7])
	d, ok3 = num(value[8:])
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, t.fail("must be YYYY-MM-DD")
	}
	if y == 0 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, 0, 0, t.fail("not a valid calendar date")
	}
	if y < t.def.MinYear || y > t.def.MaxYear {
		return 0, 0, 0, t.fail(fmt.Sprintf("year must be between %04d and %04d", t.def.MinYear, t.def.MaxYear))
	}
	return y, m, d, nil
}

func (t *dateT) plan(p *plan, value string) error {
	y, m, d, err := t.parse(value)
	if err != nil {
		return err
	}
	day := daysFromCivil(y, m, d)
	n := t.days
	p.day0 = t.first
	if t.def.KeepYear {
		p.day0 = daysFromCivil(y, 1, 1)
		n = int(daysFromCivil(y, 12, 31) - p.day0 + 1)
		if !p.light {
			p.ctx = append(p.ctx[:0], value[:4]...)
		}
	}
	p.log10 = log10Radix(n)
	if !p.light {
		p.radix = append(p.radix[:0], n)
		p.in = append(p.in[:0], int(day-p.day0))
	}
	return nil
}

// render writes the date of the day number day0+out[0].
func (t *dateT) render(p *plan, out []int) {
	p.tok = appendDate(p.tok[:0], p.day0+int64(out[0]))
}

// Mask keeps the year: "1984-**-**".
func (t *dateT) Mask(value string) string {
	if _, _, _, err := t.parse(value); err != nil {
		return "****"
	}
	return value[:4] + "-**-**"
}

// FreeSpace ignores length: the number of days in the range, or 365 with KeepYear.
func (t *dateT) FreeSpace(int) (float64, bool) {
	if t.def.KeepYear {
		return math.Log10(365), true
	}
	return math.Log10(float64(t.days)), true
}

func leap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if leap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the day number of y-m-d (proleptic Gregorian; 1970-01-01 is 0).
// H. Hinnant's algorithm.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400 // y >= 0 here
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y, m, d int) {
	z += 719468
	era := z / 146097
	doe := int(z - era*146097)
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + int(era)*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

func formatDate(day int64) string { return string(appendDate(nil, day)) }

// appendDate appends YYYY-MM-DD for the day number day (years 1..9999).
func appendDate(b []byte, day int64) []byte {
	y, m, d := civilFromDays(day)
	return append(b,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-',
		byte('0'+d/10), byte('0'+d%10))
}
