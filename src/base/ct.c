#include <openssl/crypto.h>

#include "base/ct.h"

bool sw_ct_eq(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

void sw_cleanse(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}
