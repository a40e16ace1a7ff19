package template

import "math"

// ssnT is a US Social Security Number: NNN-NN-NNNN or nine bare digits. Values may be any
// nine digits (ITINs, test numbers); every free field of a token follows the SSA's issuing
// rules: area not 000, 666 or 900-999, group not 00, serial not 0000.
type ssnT struct{ common }

// parse checks value and appends the byte offsets of its digits to digits.
func (t *ssnT) parse(value string, digits []int) ([]int, error) {
	if err := t.pre(value, 11); err != nil {
		return nil, err
	}
	switch len(value) {
	case 9:
		for i := 0; i < 9; i++ {
			if !isDigit(value[i]) {
				return nil, t.fail("must be NNN-NN-NNNN or nine digits")
			}
			digits = append(digits, i)
		}
	case 11:
		for i := 0; i < 11; i++ {
			if i == 3 || i == 6 {
				if value[i] != '-' {
					return nil, t.fail("must be NNN-NN-NNNN or nine digits")
				}
				continue
			}
			if !isDigit(value[i]) {
				return nil, t.fail("must be NNN-NN-NNNN or nine digits")
			}
			digits = append(digits, i)
		}
	default:
		return nil, t.fail("must be NNN-NN-NNNN or nine digits")
	}
	return digits, nil
}

// free fields given the keeps (whole fields only).
func (t *ssnT) fields() (area, group, serial bool) {
	return t.def.KeepPrefix == 0, t.def.KeepPrefix <= 3, t.def.KeepSuffix == 0
}

func (t *ssnT) plan(p *plan, value string) error {
	digits, err := t.parse(value, p.offs[:0])
	if err != nil {
		return err
	}
	p.offs = digits
	p.startSlots(value)
	for _, i := range digits[t.def.KeepPrefix : 9-t.def.KeepSuffix] {
		p.add(i, digitChars, value[i])
	}
	p.finishSlots(0)
	p.log10, _ = t.FreeSpace(9)
	return nil
}

// accept checks the SSA's issuing rules on the free fields of the token.
func (t *ssnT) accept(p *plan) bool {
	var d [9]int
	n := 0
	for _, c := range p.tok {
		if isDigit(c) && n < len(d) {
			d[n] = int(c - '0')
			n++
		}
	}
	areaFree, groupFree, serialFree := t.fields()
	area := d[0]*100 + d[1]*10 + d[2]
	group := d[3]*10 + d[4]
	serial := d[5]*1000 + d[6]*100 + d[7]*10 + d[8]
	return (!areaFree || area != 0 && area != 666 && area < 900) &&
		(!groupFree || group != 0) && (!serialFree || serial != 0)
}

// Mask shows the kept prefix and the last four digits (at most half of the free digits
// more than the token): "***-**-6789", "123-45-**89" with KeepPrefix 5.
func (t *ssnT) Mask(value string) string {
	var buf [9]int
	digits, err := t.parse(value, buf[:0])
	if err != nil {
		return "****"
	}
	show := map[int]bool{}
	suffix := maskSuffix(4, t.def.KeepSuffix, 9-t.def.KeepPrefix-t.def.KeepSuffix)
	for k, i := range digits {
		show[i] = k < t.def.KeepPrefix || k >= 9-suffix
	}
	return maskBytes(value, func(i int) bool { v, isDigit := show[i]; return v || !isDigit })
}

func (t *ssnT) FreeSpace(length int) (float64, bool) {
	if length != 9 {
		return 0, false
	}
	areaFree, groupFree, serialFree := t.fields()
	n := 1.0
	if areaFree {
		n *= 898
	}
	if groupFree {
		n *= 99
	}
	if serialFree {
		n *= 9999
	}
	if n == 1 {
		return math.Inf(-1), true
	}
	return math.Log10(n), true
}
