/* Baseline for benches/milenage.rs: libosmocore osmo_auth_gen_vec, one core (see run.sh). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <osmocom/crypt/auth.h>
#include <osmocom/core/utils.h>
int main(void) {
    struct osmo_sub_auth_data aud = { .type = OSMO_AUTH_TYPE_UMTS, .algo = OSMO_AUTH_ALG_MILENAGE };
    osmo_hexparse("465b5ce8b199b49faa5f0a2ee238a6bc", aud.u.umts.k, 16);
    osmo_hexparse("cd63cb71954a9f4e48a5994e37a02baf", aud.u.umts.opc, 16);
    aud.u.umts.opc_is_op = 0;
    aud.u.umts.amf[0] = 0x80; aud.u.umts.amf[1] = 0;
    aud.u.umts.sqn = 0; aud.u.umts.ind_bitlen = 5;
    struct osmo_auth_vector vec;
    uint8_t rand[16] = {0x23};
    const int N = 2000000;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < N; i++) { rand[0] = i; rand[1] = i >> 8; osmo_auth_gen_vec(&vec, &aud, rand); }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("osmo_auth_gen_vec: %.0f vectors/s (one core)\n", N / s);
    return 0;
}
